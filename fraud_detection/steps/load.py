"""The load step: read or generate, validate, version and split the data by time."""

from __future__ import annotations

import logging
from dataclasses import dataclass
from pathlib import Path

from fraud_detection import data
from fraud_detection.config import SYNTHETIC_URI, DataKnobs
from fraud_detection.schema import LABEL
from fraud_detection.synth import SyntheticConfig

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
    loaded = data.load_dataset(knobs.data_uri, knobs.sensitive_column, synthetic)
    windows = data.time_split(loaded.frame, knobs.fractions)
    for name, window in windows.items():
        data.write_parquet(window, outputs[name])
    result = LoadStepResult(
        data_version=loaded.version,
        source=loaded.source,
        rows={name: len(w) for name, w in windows.items()},
        frauds={name: int(w[LABEL].sum()) for name, w in windows.items()},
        oracle_label_noise=synthetic.label_noise if knobs.data_uri == SYNTHETIC_URI else None,
    )
    log.info("windows: %s", ", ".join(f"{k} {v:,} rows" for k, v in result.rows.items()))
    return result
