"""The window arithmetic, once: the offline computation and the online lookup both call ``evaluate``.

``History`` holds one entity role's events sorted by (entity, event time); queries are (entity, time, amount).
Offline the history is the whole frame and every row is a query; online it is the stored state of one entity
and the query is the transaction being scored. The rule, for a query at time ``t``, window ``W``, delay ``D``:

* an event counts if ``t - D - W <= event_time < t - D`` (strictly before ``t``: equal times never see each
  other, whatever their order in the file);
* a label counts only if ``label_time < t`` (unknown labels carry ``label_time = inf``).

No step loops over rows: windows are found with ``np.searchsorted`` on (entity, time-rank) keys, sums with
cumulative sums per entity, and the two counts that depend on a second order (distinct counterparties, known
labels) with ``count_less``, a wavelet-matrix range count that is ``O((n + q) log n)`` in numpy.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from fraud_detection.features.definitions import Aggregate

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]


@dataclass(frozen=True)
class History:
    """One role's events sorted by (entity code, event time); ties keep the order given."""

    entity: Ints
    time: Floats
    amount: Floats
    label: Ints
    label_time: Floats
    counterparty: Mapping[str, Ints]

    @classmethod
    def build(
        cls,
        entity: Ints,
        time: Floats,
        amount: Floats,
        label: Ints,
        label_time: Floats,
        counterparty: Mapping[str, Ints],
    ) -> History:
        """Sort the events by (entity, time), stably."""
        order = np.lexsort((time, entity))
        return cls(
            entity=entity[order],
            time=time[order],
            amount=amount[order],
            label=label[order],
            label_time=label_time[order],
            counterparty={role: codes[order] for role, codes in counterparty.items()},
        )


@dataclass(frozen=True)
class _Index:
    """Search keys over a history: ``entity * stride + rank(time)``, and per-entity cumulative amounts."""

    times: Floats  # sorted distinct event times
    keys: Ints
    stride: int
    amount_csum: Floats  # inclusive, restarting at each entity

    @classmethod
    def of(cls, history: History) -> _Index:
        times = np.unique(history.time)
        stride = len(times) + 1
        keys = history.entity * stride + np.searchsorted(times, history.time)
        if not len(history.entity) or history.entity[0] == history.entity[-1]:
            csum: Floats = np.cumsum(history.amount)
        else:
            csum = np.asarray(pd.Series(history.amount).groupby(history.entity, sort=False).cumsum(), dtype=np.float64)
        return cls(times=times, keys=keys, stride=stride, amount_csum=csum)

    def position(self, entity: Ints, time: Floats) -> Ints:
        """Index of the entity's first event with ``event_time >= time`` (its end if none)."""
        rank = np.searchsorted(self.times, time, side="left")
        return np.searchsorted(self.keys, entity * self.stride + rank, side="left")


def count_less(values: Ints, start: Ints, stop: Ints, bound: Ints) -> Ints:
    """For each query ``i``: how many ``values[start[i]:stop[i]]`` are ``< bound[i]`` (values and bounds >= 0).

    A wavelet matrix built level by level (one stable partition per bit), with all queries descending together.
    """
    top = int(max(values.max(initial=0), bound.max(initial=0)))
    out = np.zeros(len(start), dtype=np.int64)
    level_values = values.astype(np.int64, copy=True)
    lo, hi = start.astype(np.int64, copy=True), stop.astype(np.int64, copy=True)
    for level in reversed(range(max(top.bit_length(), 1))):
        ones = (level_values >> level) & 1
        zeros_before = np.zeros(len(level_values) + 1, dtype=np.int64)
        np.cumsum(ones == 0, out=zeros_before[1:])
        total_zeros = zeros_before[-1]
        lo_zeros, hi_zeros = zeros_before[lo], zeros_before[hi]
        take_ones = ((bound >> level) & 1).astype(bool)
        out += np.where(take_ones, hi_zeros - lo_zeros, 0)
        lo = np.where(take_ones, total_zeros + lo - lo_zeros, lo_zeros)
        hi = np.where(take_ones, total_zeros + hi - hi_zeros, hi_zeros)
        level_values = np.concatenate((level_values[ones == 0], level_values[ones == 1]))
    return out


def window_sum(index: _Index, entity_start: Ints, start: Ints, stop: Ints) -> Floats:
    """Sum of amounts in ``[start, stop)`` from the per-entity cumulative sums (0 for an empty window)."""
    csum = index.amount_csum
    if not len(csum):
        return np.zeros(len(start))
    upper = csum[np.maximum(stop - 1, 0)]
    lower = np.where(start > entity_start, csum[np.maximum(start - 1, 0)], 0.0)
    return np.where(stop > start, upper - lower, 0.0)


def mean(total: Floats, count: Ints) -> Floats:
    """Mean amount of the window; 0 for an empty window."""
    return np.divide(total, count, out=np.zeros(len(total)), where=count > 0)


def amount_ratio(amount: Floats, average: Floats, count: Ints) -> Floats:
    """The transaction's amount over the window's mean; 1 (no evidence) when the window is empty or its mean is 0."""
    usable = (count > 0) & (average > 0)
    return np.divide(amount, average, out=np.ones(len(amount)), where=usable)


def seconds_since_last(history: History, time: Floats, start: Ints, stop: Ints, window: float) -> Floats:
    """Seconds from the window's last event to ``t``; the window length when the window is empty."""
    if not len(history.time):
        return np.full(len(time), window)
    last = history.time[np.maximum(stop - 1, 0)]
    return np.where(stop > start, time - last, window)


def previous_same(entity: Ints, counterparty: Ints) -> Ints:
    """For each event: 1 + index of the entity's previous event with the same counterparty, or 0 if none."""
    order = np.lexsort((np.arange(len(entity)), counterparty, entity))
    same = np.zeros(len(entity), dtype=bool)
    same[1:] = (entity[order][1:] == entity[order][:-1]) & (counterparty[order][1:] == counterparty[order][:-1])
    previous = np.zeros(len(entity), dtype=np.int64)
    previous[order[1:][same[1:]]] = order[:-1][same[1:]] + 1
    return previous


def distinct(previous: Ints, start: Ints, stop: Ints) -> Ints:
    """Distinct counterparties in ``[start, stop)``: events whose previous same-counterparty event is before start."""
    return count_less(previous, start, stop, start + 1)


def label_counts(history: History, time: Floats, start: Ints, stop: Ints) -> tuple[Ints, Ints]:
    """(labels known, frauds known) among the window's events: those with ``label_time < t``."""
    label_times = np.unique(history.label_time)
    ranks = np.searchsorted(label_times, history.label_time)
    bound = np.searchsorted(label_times, time, side="left")
    known = count_less(ranks, start, stop, bound)
    is_fraud = history.label == 1
    frauds_before = np.zeros(len(is_fraud) + 1, dtype=np.int64)
    np.cumsum(is_fraud, out=frauds_before[1:])
    frauds = count_less(ranks[is_fraud], frauds_before[start], frauds_before[stop], bound)
    return known, frauds


def fraud_risk(known: Ints, frauds: Ints) -> Floats:
    """Frauds over known labels in the window; 0 when no label is known yet."""
    return np.divide(frauds, known, out=np.zeros(len(known)), where=known > 0)


def evaluate(
    history: History, entity: Ints, time: Floats, amount: Floats, aggregates: Sequence[Aggregate]
) -> dict[str, Floats]:
    """Every aggregate of one role for every query, as float64 arrays named by the aggregate's name.

    Bounds are computed once per (window, delay); the distinct and label counts of all windows run as one batch.
    """
    index = _Index.of(history)
    entity_start = index.position(entity, np.full(len(time), -np.inf))
    bounds: dict[tuple[float, float], tuple[Ints, Ints]] = {}
    for aggregate in aggregates:
        span = (aggregate.window, aggregate.label_delay)
        if span not in bounds:
            upper = time - aggregate.label_delay
            bounds[span] = (index.position(entity, upper - aggregate.window), index.position(entity, upper))
    batched = _batched_counts(history, time, aggregates, bounds)
    out: dict[str, Floats] = {}
    for aggregate in aggregates:
        start, stop = bounds[(aggregate.window, aggregate.label_delay)]
        count = stop - start
        kind = aggregate.aggregate
        if kind == "count":
            value = count.astype(np.float64)
        elif kind in ("sum", "mean", "amount_ratio"):
            total = window_sum(index, entity_start, start, stop)
            value = total if kind == "sum" else mean(total, count)
            value = amount_ratio(amount, value, count) if kind == "amount_ratio" else value
        elif kind == "seconds_since_last":
            value = seconds_since_last(history, time, start, stop, aggregate.window)
        elif kind == "distinct":
            value = batched[aggregate.name].astype(np.float64)
        else:
            value = fraud_risk(*batched[aggregate.name])
        out[aggregate.name] = np.asarray(value, dtype=np.float64)
    return out


def _batched_counts(
    history: History,
    time: Floats,
    aggregates: Sequence[Aggregate],
    bounds: Mapping[tuple[float, float], tuple[Ints, Ints]],
) -> dict:
    """The distinct and label counts, every window of a kind (and counterparty) in one ``count_less`` pass."""
    groups: dict[str, list[Aggregate]] = {}
    for aggregate in aggregates:
        if aggregate.aggregate in ("distinct", "fraud_risk"):
            groups.setdefault(f"{aggregate.aggregate}:{aggregate.column}", []).append(aggregate)
    out: dict = {}
    n = len(time)
    for group in groups.values():
        start = np.concatenate([bounds[(a.window, a.label_delay)][0] for a in group])
        stop = np.concatenate([bounds[(a.window, a.label_delay)][1] for a in group])
        if group[0].aggregate == "distinct":
            previous = previous_same(history.entity, history.counterparty[str(group[0].column)])
            counts = distinct(previous, start, stop)
            out.update({a.name: counts[i * n : (i + 1) * n] for i, a in enumerate(group)})
        else:
            known, frauds = label_counts(history, np.tile(time, len(group)), start, stop)
            out.update({a.name: (known[i * n : (i + 1) * n], frauds[i * n : (i + 1) * n]) for i, a in enumerate(group)})
    return out
