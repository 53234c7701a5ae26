"""Negative downsampling: every fraud row, a share of the legitimate rows, weights that make up for it.

Training on all frauds and a fraction ``rate`` of legitimate rows is the fraud industry's usual way to cut
training cost on data that is 99.8 % legitimate. Each kept legitimate row is weighted ``1 / rate``, so the
weighted data has the class balance of the full data: the booster's base-score shift (see
:mod:`fraud_detection.boosting`) then gives calibrated probabilities again, with no further correction.
Off by default (``negative_sample_rate = 1``); both engines apply it the same way (the Dask engine per
partition, with a seeded stream per partition).
"""

from __future__ import annotations

import numpy as np


def keep_negatives_mask(y: np.ndarray, rate: float, rng: np.random.Generator) -> np.ndarray:
    """A boolean mask keeping every fraud row (``y == 1``) and each other row with probability ``rate``."""
    if not 0.0 < rate <= 1.0:
        raise ValueError(f"the share of legitimate rows kept must be within (0, 1], got {rate}")
    if rate == 1.0:
        return np.ones(y.size, dtype=bool)
    return (y == 1) | (rng.random(y.size) < rate)


def downsample(y: np.ndarray, rate: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted row indices kept by :func:`keep_negatives_mask` and their weights (1 for frauds, ``1/rate`` else)."""
    rows = np.flatnonzero(keep_negatives_mask(y, rate, np.random.default_rng(seed)))
    weights = np.where(y[rows] == 1, 1.0, 1.0 / rate).astype(np.float32)
    return rows, weights


def early_stopping_share(rows: int, positives: int, max_rows: int) -> float:
    """The share of legitimate rows to keep so that all frauds plus the kept rest number about ``max_rows``
    (1 when there are no more than ``max_rows`` rows)."""
    if rows <= max_rows:
        return 1.0
    negatives = rows - positives
    return min(1.0, max(max_rows - positives, 1) / max(negatives, 1))
