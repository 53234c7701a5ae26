"""The load and train steps on the Dask engine: the same results as the local steps, made on a cluster."""

from __future__ import annotations

import dataclasses
import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fraud_detection import boosting, data, data_transactions, synth
from fraud_detection.config import SYNTHETIC_TRANSACTIONS_URI, SYNTHETIC_URI, DataKnobs
from fraud_detection.engines import dask_boosting, dask_load, dask_transactions
from fraud_detection.families.fit import xgboost_fit
from fraud_detection.modeldir import TransactionInputs
from fraud_detection.schema import DEFAULT_SENSITIVE_COLUMN
from fraud_detection.steps.bakeoff import record_inputs, write_family
from fraud_detection.steps.load import LoadStepResult, dataset_columns
from fraud_detection.tracking import DatasetInput
from fraud_detection.transactions.generator import TransactionConfig, generate

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

SYNTHETIC_PART_ROWS = 1_000_000
"""Rows per file when the Dask engine generates the synthetic data set, or generated raw transactions (part by
part, on the workers)."""


def _write_part(config: synth.SyntheticConfig, part: int, parts: int, folder: str) -> None:
    import fsspec

    frame = synth.generate_part(config, part, parts)
    with fsspec.open(f"{folder.rstrip('/')}/part-{part:05d}.parquet", "wb", auto_mkdir=True) as f:
        data.write_parquet(frame, f)


def generate_synthetic(client: Client, config: synth.SyntheticConfig, folder: str) -> None:
    """Write the synthetic data set as Parquet parts of about :data:`SYNTHETIC_PART_ROWS` rows, made by the
    workers (see :func:`fraud_detection.synth.generate_part`)."""
    parts = max(1, -(-config.n_rows // SYNTHETIC_PART_ROWS))
    client.gather(client.map(_write_part, [config] * parts, range(parts), [parts] * parts, folder=folder, pure=False))


def _write_transactions(config: TransactionConfig, shard: int, shards: int, folder: str) -> None:
    import fsspec

    mapping = data_transactions.mapping_of(data_transactions.GENERATOR_MAPPING)
    if shards == 1:
        frame = generate(config)
    else:
        seed = int(np.random.SeedSequence([config.seed, shard]).generate_state(1)[0])
        rows = config.n_rows // shards + (1 if shard < config.n_rows % shards else 0)
        frame = generate(dataclasses.replace(config, n_rows=rows, seed=seed))
        for column in (mapping.tx_id, *mapping.entities.values()):
            frame[column] = f"s{shard}-" + frame[column].astype(str)
    with fsspec.open(f"{folder.rstrip('/')}/part-{shard:05d}.parquet", "wb", auto_mkdir=True) as f:
        data.write_parquet(frame, f)


def generate_transactions(client: Client, config: TransactionConfig, folder: str) -> int:
    """Write generated raw transactions (the generator's mapping) as Parquet parts, made by the workers; the
    number of parts.

    Up to :data:`SYNTHETIC_PART_ROWS` rows, one part: the local engine's data set for the same seed. Above, the
    generator (a whole population at once) cannot cut its output into parts, so each part is a population of
    its own: ``n_rows / parts`` rows, its own customers and terminals (ids prefixed ``s<part>-``) and seed
    (drawn from the seed and the part's number), over the same days. The rates per customer and terminal are
    the generator's; no card or terminal spans two parts.
    """
    shards = max(1, -(-config.n_rows // SYNTHETIC_PART_ROWS))
    futures = client.map(
        _write_transactions, [config] * shards, range(shards), [shards] * shards, folder=folder, pure=False
    )
    client.gather(futures)
    return shards


def _dask_transactions_step(
    client: Client, knobs: DataKnobs, outputs: Mapping[str, str], scratch: str
) -> LoadStepResult:
    inputs = data_transactions.inputs_of(knobs)
    uri = knobs.data_uri
    if uri == SYNTHETIC_TRANSACTIONS_URI:
        config = TransactionConfig(n_rows=knobs.synthetic_rows, seed=knobs.synthetic_seed)
        uri = f"{scratch.rstrip('/')}/synthetic-transactions"
        shards = generate_transactions(client, config, uri)
        source = f"synthetic-transactions(rows={config.n_rows}, seed={config.seed}, parts={shards})"
    else:
        source = uri
    loaded = dask_transactions.load_transactions(client, uri, inputs, knobs.sensitive_column, knobs.fractions, outputs)
    return _load_result(loaded, source, outputs, None)


def _load_result(
    loaded: dask_load.DaskLoadResult,
    source: str,
    outputs: Mapping[str, str],
    oracle_label_noise: float | None,
) -> LoadStepResult:
    """The load step's result from what either Dask load wrote (its version, rows and frauds per window); the
    lineage's columns are the training window's."""
    import dask.dataframe as dd

    return LoadStepResult(
        data_version=loaded.version,
        source=source,
        rows=loaded.rows,
        frauds=loaded.frauds,
        oracle_label_noise=oracle_label_noise,
        dataset=DatasetInput(
            source=source,
            version=loaded.version,
            rows=sum(loaded.rows.values()),
            frauds=sum(loaded.frauds.values()),
            columns=dataset_columns(dd.read_parquet(outputs["train"]).dtypes),
        ),
    )


def dask_load_step(client: Client, knobs: DataKnobs, outputs: Mapping[str, str], scratch: str) -> LoadStepResult:
    """The load step on the cluster: windows written as directories of Parquet parts.

    Raw transactions (``data_mapping``, or ``synthetic-transactions``) go through
    :func:`fraud_detection.engines.dask_transactions.load_transactions`: the local engine's windows and
    features. Generated ones carry no true probabilities here (``oracle_test_auprc`` stays None).

    Args:
        outputs: a directory (local or ``gs://``, reachable by every worker) for each window.
        scratch: a folder the workers can write, for the synthetic data set's parts.
    """
    if knobs.transactions:
        return _dask_transactions_step(client, knobs, outputs, scratch)
    synthetic = synth.SyntheticConfig(
        n_rows=knobs.synthetic_rows,
        seed=knobs.synthetic_seed,
        drift=knobs.synthetic_drift,
        sensitive_column=knobs.sensitive_column or DEFAULT_SENSITIVE_COLUMN,
        setting=knobs.synthetic_setting,
    )
    uri = knobs.data_uri
    if uri == SYNTHETIC_URI:
        uri = f"{scratch.rstrip('/')}/synthetic"
        generate_synthetic(client, synthetic, uri)
    loaded = dask_load.load_and_split(client, uri, knobs.sensitive_column, knobs.fractions, outputs)
    source = (
        f"synthetic(rows={synthetic.n_rows}, seed={synthetic.seed}, drift={synthetic.drift}, "
        f"setting={synthetic.setting}, parts)"
        if knobs.data_uri == SYNTHETIC_URI
        else loaded.source
    )
    return _load_result(loaded, source, outputs, synthetic.label_noise if knobs.data_uri == SYNTHETIC_URI else None)


def dask_xgboost_step(
    client: Client,
    train_path: str | Path,
    validation_path: str | Path,
    params: boosting.TrainParams,
    model_dir: Path,
    data_version: str,
    negative_sample_rate: float = 1.0,
) -> dict[str, float]:
    """The XGBoost family on the cluster (:func:`fraud_detection.engines.dask_boosting.train_booster_dask`): the same
    model directory and metrics as :func:`fraud_detection.steps.bakeoff.train_family_step` writes for it (with
    the mapping and feature set a raw-transaction window records).

    Only the validation window's scores and labels come back to this process, never a feature matrix.
    """
    result, y_valid = dask_boosting.train_booster_dask(
        client, train_path, validation_path, params, negative_sample_rate
    )
    metrics = write_family(xgboost_fit(result), y_valid, params, model_dir, data_version)
    record_inputs(Path(model_dir), _window_inputs(str(train_path)))
    return metrics


def _window_inputs(url: str) -> TransactionInputs | None:
    """The inputs a window (a file or directory of parts, local or ``gs://``) records; None for the public schema."""
    import fsspec
    import pyarrow.parquet as pq

    fs, path = fsspec.core.url_to_fs(url)
    first = min(fs.glob(f"{path.rstrip('/')}/*.parquet"), default=path) if fs.isdir(path) else path
    with fs.open(first, "rb") as f:
        raw = (pq.ParquetFile(f).schema_arrow.metadata or {}).get(data_transactions.INPUTS_KEY)
    return None if raw is None else TransactionInputs.model_validate_json(raw)
