"""Live performance per model version and endpoint: realised on matured rows, estimated on pending ones.

**Realised** (rows past maturity, outcome = label or the implied 0 of :mod:`fraud_detection.monitoring.join`):
precision and recall of the decisions, AUPRC of the probabilities (scikit-learn's average precision), alert
rate (share flagged) and label coverage (share with an explicit label).

**Estimated** (rows still pending, no outcome used): the model's probabilities read as true frequencies.
*Assumption: the scores are calibrated on the served traffic, P(fraud | score s) = s.* Then the expected
number of frauds among the flagged rows is the sum of their scores, so expected precision = mean score of the
flagged rows, expected recall = sum of flagged scores / sum of all scores, expected fraud rate = mean score.
The estimate is only as good as the calibration: drift and decay break it first, which is why the realised
numbers replace it as the labels mature.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import pandas as pd

KEYS = ["model_version", "endpoint"]


@dataclass(frozen=True)
class Realised:
    """Metrics of one model version and endpoint on its matured rows (NaN where undefined)."""

    model_version: str
    endpoint: str
    rows: int
    positives: int
    precision: float
    recall: float
    auprc: float
    alert_rate: float
    label_coverage: float


@dataclass(frozen=True)
class Estimated:
    """The calibrated-score estimate for one model version and endpoint on its pending rows."""

    model_version: str
    endpoint: str
    rows: int
    precision: float
    recall: float
    fraud_rate: float
    alert_rate: float


def auprc(outcome: np.ndarray, score: np.ndarray) -> float:
    """Average precision of ``score`` for ``outcome`` (NaN with no positive: nothing to rank)."""
    from sklearn.metrics import average_precision_score

    if int(np.sum(outcome)) == 0:
        return math.nan
    return float(average_precision_score(outcome, score))


def _ratio(numerator: float, denominator: float) -> float:
    return numerator / denominator if denominator else math.nan


def realised(matured: pd.DataFrame) -> list[Realised]:
    """Realised metrics of every (model version, endpoint) in ``matured`` (from ``split_by_maturity``)."""
    found = []
    for (version, endpoint), group in matured.groupby(KEYS, sort=True):
        outcome = group["outcome"].to_numpy(dtype=int)
        flagged = group["decision"].to_numpy(dtype=bool)
        hits = int(np.sum(outcome[flagged]))
        positives = int(np.sum(outcome))
        found.append(
            Realised(
                model_version=str(version),
                endpoint=str(endpoint),
                rows=len(group),
                positives=positives,
                precision=_ratio(hits, int(np.sum(flagged))),
                recall=_ratio(hits, positives),
                auprc=auprc(outcome, group["probability"].to_numpy(dtype=float)),
                alert_rate=float(np.mean(flagged)),
                label_coverage=float(group["labelled"].mean()),
            )
        )
    return found


def estimated(pending: pd.DataFrame) -> list[Estimated]:
    """The calibrated-score estimate of every (model version, endpoint) in ``pending``; see the module's
    assumption."""
    found = []
    for (version, endpoint), group in pending.groupby(KEYS, sort=True):
        score = group["probability"].to_numpy(dtype=float)
        flagged = group["decision"].to_numpy(dtype=bool)
        found.append(
            Estimated(
                model_version=str(version),
                endpoint=str(endpoint),
                rows=len(group),
                precision=float(np.mean(score[flagged])) if flagged.any() else math.nan,
                recall=_ratio(float(np.sum(score[flagged])), float(np.sum(score))),
                fraud_rate=float(np.mean(score)),
                alert_rate=float(np.mean(flagged)),
            )
        )
    return found
