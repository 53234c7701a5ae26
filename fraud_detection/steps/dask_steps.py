"""The load and train steps on the Dask engine: the same results as the local steps, made on a cluster."""

from __future__ import annotations

import logging
from collections.abc import Mapping
from pathlib import Path
from typing import TYPE_CHECKING

from fraud_detection import boosting, data, synth
from fraud_detection.config import SYNTHETIC_URI, DataKnobs
from fraud_detection.engines import dask_boosting, dask_load
from fraud_detection.families.fit import xgboost_fit
from fraud_detection.schema import DEFAULT_SENSITIVE_COLUMN
from fraud_detection.steps.bakeoff import write_family
from fraud_detection.steps.load import LoadStepResult, dataset_columns
from fraud_detection.tracking import DatasetInput

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

SYNTHETIC_PART_ROWS = 1_000_000
"""Rows per file when the Dask engine generates the synthetic data set (part by part, on the workers)."""


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


def dask_load_step(client: Client, knobs: DataKnobs, outputs: Mapping[str, str], scratch: str) -> LoadStepResult:
    """The load step on the cluster: windows written as directories of Parquet parts.

    Args:
        outputs: a directory (local or ``gs://``, reachable by every worker) for each window.
        scratch: a folder the workers can write, for the synthetic data set's parts.
    """
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
    import dask.dataframe as dd

    return LoadStepResult(
        data_version=loaded.version,
        source=source,
        rows=loaded.rows,
        frauds=loaded.frauds,
        oracle_label_noise=synthetic.label_noise if knobs.data_uri == SYNTHETIC_URI else None,
        dataset=DatasetInput(
            source=source,
            version=loaded.version,
            rows=sum(loaded.rows.values()),
            frauds=sum(loaded.frauds.values()),
            columns=dataset_columns(dd.read_parquet(outputs["train"]).dtypes),
        ),
    )


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
    model directory and metrics as :func:`fraud_detection.steps.bakeoff.train_family_step` writes for it.

    Only the validation window's scores and labels come back to this process, never a feature matrix.
    """
    result, y_valid = dask_boosting.train_booster_dask(
        client, train_path, validation_path, params, negative_sample_rate
    )
    return write_family(xgboost_fit(result), y_valid, params, model_dir, data_version)
