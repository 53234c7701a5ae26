"""The load step: read or generate, validate, version and split the data by time.

Raw transactions (``data_mapping``, or the transaction generator) are checked against their mapping, and their
feature set is computed point-in-time correct over the whole data set before the split (a row's features use only
events strictly before it, so computing them before cutting the windows leaks nothing): each window then holds
the features as the model's columns (:mod:`fraud_detection.data_transactions`).
"""

from __future__ import annotations

import logging
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, replace
from pathlib import Path

import numpy as np
import pandas as pd

from fraud_detection import data, data_transactions
from fraud_detection.config import SYNTHETIC_URI, DataKnobs
from fraud_detection.schema import LABEL
from fraud_detection.synth import SyntheticConfig
from fraud_detection.tracking import DatasetInput

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class LoadStepResult:
    """What the load step wrote: the data version, where it came from, and each window's size."""

    data_version: str
    source: str
    rows: dict[str, int]
    frauds: dict[str, int]
    oracle_label_noise: float | None
    """The generator's label noise for synthetic data (true probabilities exist then); None for real data."""
    dataset: DatasetInput
    """The whole data set as MLflow's lineage records it (the train step logs it as the run's dataset input)."""
    oracle_test_auprc: float | None = None
    """Generated raw transactions: the test window's AUPRC of the generator's true probabilities (the best
    achievable), measured here, where they are known; None otherwise."""


def _mlflow_type(dtype: object) -> str:
    kind = getattr(dtype, "kind", "O")
    return {"f": "double", "i": "long", "u": "long", "b": "boolean"}.get(kind, "string")


def dataset_columns(dtypes: pd.Series) -> dict[str, str]:
    """Column name -> MLflow type (``double``, ``long``, ``boolean``, ``string``), in order, for the lineage
    (``dtypes``: a pandas or Dask frame's ``dtypes``)."""
    return {str(name): _mlflow_type(dtype) for name, dtype in dtypes.items()}


def load_step(knobs: DataKnobs, outputs: dict[str, Path]) -> LoadStepResult:
    """Read or generate, validate, version and split the data; write each window as Parquet.

    Args:
        knobs: where the data comes from and the split fractions.
        outputs: a path for each of ``train``, ``validation``, ``test``, ``current``.
    """
    synthetic = SyntheticConfig(
        n_rows=knobs.synthetic_rows,
        seed=knobs.synthetic_seed,
        drift=knobs.synthetic_drift,
        setting=knobs.synthetic_setting,
    )
    metadata, truth = None, None
    if knobs.transactions:
        inputs = data_transactions.inputs_of(knobs)
        rows, source, truth = data_transactions.read_canonical(knobs, inputs)
        frame = data_transactions.featured(rows, inputs, knobs.sensitive_column)
        metadata = data_transactions.window_metadata(inputs)
        log.info("%d engineered features (%s ...)", len(inputs.features.names), ", ".join(inputs.features.names[:3]))
    else:
        frame, source = data.read_dataset(knobs.data_uri, knobs.sensitive_column, synthetic)
    windows = data.time_split(frame, knobs.fractions)
    with ThreadPoolExecutor(data.IO_THREADS) as pool:  # hashing and Parquet writing release the GIL
        hashing = pool.submit(data.data_version, frame)
        writes = [pool.submit(data.write_parquet, window, outputs[name], metadata) for name, window in windows.items()]
        for write in writes:
            write.result()
        version = hashing.result()
    data.log_loaded(source, frame, version)
    result = LoadStepResult(
        data_version=version,
        source=source,
        rows={name: len(w) for name, w in windows.items()},
        frauds={name: int(w[LABEL].sum()) for name, w in windows.items()},
        oracle_label_noise=synthetic.label_noise if knobs.data_uri == SYNTHETIC_URI else None,
        dataset=DatasetInput(
            source=source,
            version=version,
            rows=len(frame),
            frauds=int(frame[LABEL].sum()),
            columns=dataset_columns(frame.dtypes),
        ),
    )
    if truth is not None:  # canonical and time_split keep the generator's time order: truth stays row-aligned
        result = replace(result, oracle_test_auprc=_test_auprc(frame[LABEL].to_numpy(), truth, knobs))
    log.info("windows: %s", ", ".join(f"{k} {v:,} rows" for k, v in result.rows.items()))
    return result


def _test_auprc(labels: np.ndarray, scores: np.ndarray, knobs: DataKnobs) -> float:
    """AUPRC of ``scores`` on the rows of the test window (rows in time order, cut as :func:`data.time_split`)."""
    from sklearn.metrics import average_precision_score

    bounds = data.split_bounds(len(labels), knobs.fractions)
    test = slice(bounds[2], bounds[3])
    return float(average_precision_score(labels[test], scores[test]))
