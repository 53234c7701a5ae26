"""Skew and drift of served traffic, per feature and for the score: a population stability index (PSI).

* **skew**: the served window against the training reference recorded with the model;
* **drift**: the served window against the previous serving window.

Each column's reference is cut at its deciles (:class:`Reference`, a small JSON document that can travel with
the model); PSI = Σ (served share − reference share) · ln(served share / reference share) over those bins. Why
PSI rather than a test's p-value (scipy's ``ks_2samp``) or an Evidently report: a p-value shrinks with the
window's size, so the same small shift alerts at 100,000 rows and not at 1,000, while PSI measures the size of
the shift whatever the window (its noise on an unshifted window is about (bins − 1)·(1/n + 1/m), 0.002 at
5,000 served rows); it has a reading that risk teams use (below 0.1 stable, 0.1–0.25 moving, above 0.25
shifted); it costs one ``searchsorted`` per column, so the joiner can recompute it on every refresh; and
Evidently 0.7's drift report, which the training run already renders, stays the scheduled human-readable view.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Literal

import numpy as np
import pandas as pd
from pydantic import BaseModel, Field

from fraud_detection.monitoring import PSI_THRESHOLD

BINS = 10
FLOOR = 1e-4
"""The smallest share a bin counts with, so an empty bin gives a large finite PSI rather than infinity."""
DEFAULT_THRESHOLD = PSI_THRESHOLD
Kind = Literal["skew", "drift"]


class Bins(BaseModel):
    """One column's reference: the interior cut points and the reference share of each of the bins they make."""

    edges: list[float]
    shares: list[float]


class Reference(BaseModel):
    """Every column's :class:`Bins`, built from a frame (training data, or the previous serving window)."""

    rows: int = Field(ge=1)
    columns: dict[str, Bins]

    @classmethod
    def of(cls, frame: pd.DataFrame, bins: int = BINS) -> Reference:
        """The deciles (by default) of every numeric column of ``frame`` and the shares they cut."""
        columns = {}
        for name in frame.columns:
            values = frame[name].to_numpy(dtype=float)
            values = values[np.isfinite(values)]
            cuts = np.linspace(0, 1, bins + 1)[1:-1]
            edges: np.ndarray = np.unique(np.quantile(values, cuts)) if len(values) else np.empty(0)
            columns[str(name)] = Bins(edges=[float(e) for e in edges], shares=_shares(values, edges))
        return cls(rows=len(frame), columns=columns)


@dataclass(frozen=True)
class Shift:
    """One column's PSI against one reference, and whether it crossed its threshold."""

    column: str
    kind: Kind
    psi: float
    threshold: float

    @property
    def alert(self) -> bool:
        """True when the PSI is above the threshold."""
        return self.psi > self.threshold


def _shares(values: np.ndarray, edges: np.ndarray) -> list[float]:
    counts = np.bincount(np.searchsorted(edges, values, side="right"), minlength=len(edges) + 1)
    total = counts.sum()
    return [float(c / total) if total else 0.0 for c in counts]


def psi(reference: Bins, values: np.ndarray) -> float:
    """The PSI of ``values`` against ``reference`` (NaN when there are no finite values)."""
    values = values[np.isfinite(values)]
    if not len(values):
        return math.nan
    expected = np.maximum(np.asarray(reference.shares), FLOOR)
    actual = np.maximum(np.asarray(_shares(values, np.asarray(reference.edges))), FLOOR)
    return float(np.sum((actual - expected) * np.log(actual / expected)))


def shifts(
    reference: Reference,
    served: pd.DataFrame,
    kind: Kind,
    thresholds: Mapping[str, float] | None = None,
    default_threshold: float = DEFAULT_THRESHOLD,
) -> list[Shift]:
    """The PSI of every reference column present in ``served``, each with its threshold (per column, or the
    default)."""
    limits = thresholds or {}
    return [
        Shift(name, kind, psi(bins, served[name].to_numpy(dtype=float)), limits.get(name, default_threshold))
        for name, bins in reference.columns.items()
        if name in served.columns
    ]
