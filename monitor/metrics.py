"""What the joiner measures on each refresh (:class:`Snapshot`), and the Prometheus collector that shows it.

The collector yields the last snapshot on every scrape, so a scrape never waits for a computation and a
version or endpoint that left the window leaves ``/metrics`` with it (no stale labelled series). Undefined
values (NaN: no fraud yet, nothing flagged) are left out rather than exposed as NaN.
"""

from __future__ import annotations

import logging
import math
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import datetime, timedelta

from prometheus_client.core import GaugeMetricFamily, Metric
from prometheus_client.registry import Collector

from fraud_detection.monitoring import join, performance, shadow, shift

log = logging.getLogger(__name__)

REALISED = {
    "precision": "share of flagged matured transactions that were fraud",
    "recall": "share of matured frauds that were flagged",
    "auprc": "average precision of the probabilities on matured transactions",
    "alert_rate": "share of matured transactions flagged",
    "label_coverage": "share of matured transactions with an explicit label (the rest count as legitimate)",
    "rows": "matured transactions in the cohort window",
    "positives": "frauds among them",
}
ESTIMATED = {
    "precision": "expected precision on pending transactions if the scores are calibrated (mean flagged score)",
    "recall": "expected recall on pending transactions if the scores are calibrated",
    "fraud_rate": "expected fraud rate on pending transactions (mean score)",
    "alert_rate": "share of pending transactions flagged",
    "rows": "pending transactions (scored, not yet matured)",
}


@dataclass(frozen=True)
class Windows:
    """The time spans a snapshot looks at."""

    maturity: timedelta
    cohort: timedelta
    """Matured rows scored within this span before the maturity cutoff make the realised cohort; pending rows
    scored within it before now make the estimate's."""
    serving: timedelta
    """The served window whose features are compared with the reference (skew) and the window before (drift)."""


@dataclass
class Snapshot:
    """Everything one refresh computed."""

    realised: list[performance.Realised] = field(default_factory=list)
    estimated: list[performance.Estimated] = field(default_factory=list)
    shifts: list[shift.Shift] = field(default_factory=list)
    comparisons: dict[tuple[str, str], shadow.Comparison] = field(default_factory=dict)
    """By (champion version, challenger version)."""


def take(
    store: join.JoinStore,
    now: datetime,
    windows: Windows,
    reference: shift.Reference | None = None,
    thresholds: dict[str, float] | None = None,
    default_threshold: float = shift.DEFAULT_THRESHOLD,
    resamples: int = 200,
) -> Snapshot:
    """Measure the store at ``now``: realised and estimated performance, skew and drift, the shadow comparison."""
    matured, pending = join.cohorts(store, now, windows.maturity, windows.cohort)
    snapshot = Snapshot(performance.realised(matured), performance.estimated(pending))
    served = store.features(now - windows.serving, now)
    if len(served):
        if reference is not None:
            snapshot.shifts += shift.shifts(reference, served, "skew", thresholds, default_threshold)
        previous = store.features(now - 2 * windows.serving, now - windows.serving)
        if len(previous):
            snapshot.shifts += shift.shifts(
                shift.Reference.of(previous), served, "drift", thresholds, default_threshold
            )
    snapshot.comparisons = shadow.compare_versions(shadow.pairs(matured), resamples)
    return snapshot


def _family(name: str, documentation: str, labels: list[str]) -> GaugeMetricFamily:
    return GaugeMetricFamily(name, documentation, labels=labels)


def _add(family: GaugeMetricFamily, labels: list[str], value: float) -> None:
    if not math.isnan(value):
        family.add_metric(labels, value)


class SnapshotCollector(Collector):
    """Exposes the latest :class:`Snapshot` (set by :meth:`publish`) as ``fraud_live_*``, ``fraud_estimated_*``,
    ``fraud_shift_*`` and ``fraud_shadow_*`` gauges."""

    def __init__(self) -> None:
        self._snapshot = Snapshot()
        self._lock = threading.Lock()

    def publish(self, snapshot: Snapshot) -> None:
        """Make ``snapshot`` what the next scrape shows."""
        with self._lock:
            self._snapshot = snapshot

    def collect(self) -> Iterator[Metric]:
        """The gauges of the latest snapshot."""
        with self._lock:
            snapshot = self._snapshot
        keys = ["model_version", "endpoint"]
        for name, text in REALISED.items():
            family = _family(f"fraud_live_{name}", text, keys)
            for item in snapshot.realised:
                _add(family, [item.model_version, item.endpoint], float(getattr(item, name)))
            yield family
        for name, text in ESTIMATED.items():
            family = _family(f"fraud_estimated_{name}", text, keys)
            for estimate in snapshot.estimated:
                _add(family, [estimate.model_version, estimate.endpoint], float(getattr(estimate, name)))
            yield family
        psi = _family(
            "fraud_shift_psi", "population stability index of a column (skew: vs training)", ["column", "kind"]
        )
        limit = _family("fraud_shift_threshold", "the PSI above which the column alerts", ["column", "kind"])
        for moved in snapshot.shifts:
            _add(psi, [moved.column, moved.kind], moved.psi)
            _add(limit, [moved.column, moved.kind], moved.threshold)
        yield psi
        yield limit
        difference = _family(
            "fraud_shadow_auprc_difference",
            "challenger - champion AUPRC on the same matured transactions, with its bootstrap interval",
            ["champion_version", "challenger_version", "bound"],
        )
        pairs = _family(
            "fraud_shadow_pairs", "matured transactions both scored", ["champion_version", "challenger_version"]
        )
        for (champion_version, challenger_version), found in snapshot.comparisons.items():
            for bound, value in (("estimate", found.difference), ("low", found.low), ("high", found.high)):
                _add(difference, [champion_version, challenger_version, bound], value)
            _add(pairs, [champion_version, challenger_version], found.pairs)
        yield difference
        yield pairs
