"""The load step: read or generate, validate, version and split the data by time."""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

from fraud_detection import data
from fraud_detection.synth import SyntheticConfig

log = logging.getLogger(__name__)


def load_step(
    data_uri: str,
    sensitive_column: str,
    synthetic: SyntheticConfig,
    fractions: data.SplitFractions,
    outputs: dict[str, Path],
) -> dict[str, Any]:
    """Read or generate, validate, version and split the data; write each window as Parquet.

    Args:
        outputs: a path for each of ``train``, ``validation``, ``test``, ``current``.

    Returns:
        ``data_version``, ``source``, ``is_synthetic`` and per-window ``rows`` and ``frauds``.
    """
    loaded = data.load_dataset(data_uri, sensitive_column, synthetic)
    windows = data.time_split(loaded.frame, fractions)
    for name, window in windows.items():
        data.write_parquet(window, outputs[name])
    summary: dict[str, Any] = {
        "data_version": loaded.version,
        "source": loaded.source,
        "is_synthetic": data_uri == data.SYNTHETIC_URI,
        "label_noise": synthetic.label_noise,
        "rows": {name: len(w) for name, w in windows.items()},
        "frauds": {name: int(w[data.LABEL].sum()) for name, w in windows.items()},
    }
    log.info("windows: %s", ", ".join(f"{k} {v:,} rows" for k, v in summary["rows"].items()))
    return summary
