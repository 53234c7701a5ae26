"""The window arithmetic: the offline computation, the stream's batches and the predictor's single lookups.

``History`` holds one entity role's events sorted by (entity, event time); queries are (entity, time, amount).
Offline the history is the whole frame and every event is a query (``evaluate_events``); the stream's history
is the stored state of a batch's entities and its queries the batch's transactions (``evaluate``). The predictor
scores one transaction at a time, where numpy's per-call cost would be most of the work: ``evaluate_one`` applies
the same rule to one query in plain Python (tests hold it to ``evaluate``). The rule, for a query at time ``t``,
window ``W``, delay ``D``:

* an event counts if ``t - D - W <= event_time < t - D`` (strictly before ``t``: equal times never see each
  other, whatever their order in the file);
* a label counts only if ``label_time < t`` (unknown labels carry ``label_time = inf``).

No step loops over rows. Queries are taken in (entity, time) order, so each window's ``[start, stop)`` grows
monotonically from query to query:

* bounds are ``np.searchsorted`` on (entity, time-rank) keys with sorted needles; offline the rank of
  ``t - D - W`` is looked up once per distinct time, not per row, and the bound at ``t`` itself is the first
  event of the row's own (entity, time) run, a linear pass;
* sums are differences of cumulative sums restarted at each entity;
* the counts that depend on a second order (distinct counterparties, known labels, known frauds) are a sweep:
  each event ``j`` counts for the queries in one interval ``[lo_j, hi_j)`` of that order (those whose window
  holds ``j`` and that see its condition), found by counting the monotone bounds (``bincount`` then
  ``cumsum``) or one ``searchsorted`` for the label condition, and the counts are the prefix sum of ``+1`` at
  ``lo_j`` and ``-1`` at ``hi_j``: integers, exact, ``O((n + q) log n)``.
"""

from __future__ import annotations

import math
from bisect import bisect_left
from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from fraud_detection.features.definitions import Aggregate

Ints = NDArray[np.int64]
Floats = NDArray[np.float64]
Span = tuple[float, float]


def sort_order(entity: Ints, time: Floats) -> Ints:
    """The stable permutation that sorts events by (entity, time); ties keep the order given.

    A frame already sorted by time (the canonical frame) needs only a stable sort by entity.
    """
    if _ascending(time):
        return np.argsort(entity, kind="stable").astype(np.int64, copy=False)
    return np.lexsort((time, entity)).astype(np.int64, copy=False)


def _ascending(time: Floats) -> bool:
    return len(time) < 2 or bool(np.all(time[1:] >= time[:-1]))


def time_ranks(time: Floats) -> tuple[Floats, Ints]:
    """The sorted distinct times and each time's rank among them (``np.unique(time, return_inverse=True)``),
    in one linear pass when ``time`` is already ascending."""
    if not _ascending(time):
        times, rank = np.unique(time, return_inverse=True)
        return times, rank.astype(np.int64, copy=False)
    new = np.ones(len(time), dtype=bool)
    new[1:] = time[1:] != time[:-1]
    return time[new], np.cumsum(new, dtype=np.int64) - 1


@dataclass(frozen=True)
class History:
    """One role's events sorted by (entity code, event time); ``source`` is each event's index in the input."""

    entity: Ints
    time: Floats
    amount: Floats
    label: Ints
    label_time: Floats
    counterparty: Mapping[str, Ints]
    source: Ints
    ranked: tuple[Floats, Ints]  # the sorted distinct times, and each event's rank among them

    @classmethod
    def build(
        cls,
        entity: Ints,
        time: Floats,
        amount: Floats,
        label: Ints,
        label_time: Floats,
        counterparty: Mapping[str, Ints],
        by_entity: bool = False,
    ) -> History:
        """Sort the events by (entity, time), stably (``by_entity``: they are sorted so already)."""
        order = np.arange(len(entity), dtype=np.int64) if by_entity else sort_order(entity, time)
        times, rank = time_ranks(time)  # linear on a time-sorted input, then one gather
        return cls(
            entity=entity[order],
            time=time[order],
            amount=amount[order],
            label=label[order],
            label_time=label_time[order],
            counterparty={role: codes[order] for role, codes in counterparty.items()},
            source=order,
            ranked=(times, rank[order]),
        )


@dataclass(frozen=True)
class _Index:
    """Search keys over a history: ``entity * stride + rank(time)``, and per-entity cumulative amounts."""

    times: Floats  # sorted distinct event times
    rank: Ints  # each event's rank in ``times``
    keys: Ints
    stride: int
    amount_csum: Floats  # inclusive, restarting at each entity

    @classmethod
    def of(cls, history: History) -> _Index:
        times, rank = history.ranked
        stride = len(times) + 1
        keys = history.entity * stride + rank
        if not len(history.entity) or history.entity[0] == history.entity[-1]:
            csum: Floats = np.cumsum(history.amount)
        else:
            csum = np.asarray(pd.Series(history.amount).groupby(history.entity, sort=False).cumsum(), dtype=np.float64)
        return cls(times=times, rank=rank, keys=keys, stride=stride, amount_csum=csum)

    def position(self, entity: Ints, rank: Ints) -> Ints:
        """Index of the entity's first event whose time rank is ``>= rank`` (its end if none)."""
        return np.searchsorted(self.keys, entity * self.stride + rank, side="left").astype(np.int64, copy=False)


@dataclass(frozen=True)
class _Queries:
    """Queries sorted by (entity, time), with the rank of ``t - x`` in the history's times for any shift ``x``."""

    entity: Ints
    time: Floats
    amount: Floats
    is_history: bool  # the queries are the history's own events, in its order

    def rank_before(self, index: _Index, delay: float, window: float) -> Ints:
        """For each query: how many distinct history times are ``< t - delay - window``."""
        if self.is_history:  # one search per distinct time, then a gather
            return np.searchsorted(index.times, index.times - delay - window, side="left")[index.rank]
        return np.searchsorted(index.times, self.time - delay - window, side="left")

    def first_at_or_after(self, index: _Index, delay: float, window: float) -> Ints:
        """For each query: its entity's first event with ``event_time >= t - delay - window``."""
        if self.is_history and delay == 0 and window == 0:  # the first event of the query's own (entity, time)
            return run_start(index.keys)
        return index.position(self.entity, self.rank_before(index, delay, window))

    def entity_start(self, index: _Index) -> Ints:
        """For each query: its entity's first event."""
        if self.is_history:
            return run_start(self.entity)
        return index.position(self.entity, np.zeros(len(self.time), dtype=np.int64))


def run_start(values: Ints) -> Ints:
    """For each element of a sorted array: the index of the first element equal to it (a linear pass)."""
    starts = np.zeros(len(values), dtype=np.int64)
    if len(values) > 1:
        changed = np.flatnonzero(values[1:] != values[:-1]) + 1
        starts[changed] = changed
    return np.maximum.accumulate(starts) if len(values) else starts


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
    """For each event: the index of the entity's previous event with the same counterparty, or -1 if none."""
    width = int(counterparty.max(initial=0)) + 1
    order = np.argsort(entity * width + counterparty, kind="stable")
    same = (entity[order][1:] == entity[order][:-1]) & (counterparty[order][1:] == counterparty[order][:-1])
    previous = np.full(len(entity), -1, dtype=np.int64)
    previous[order[1:][same]] = order[:-1][same]
    return previous


def sweep(lo: Ints, hi: Ints, queries: int) -> Ints:
    """For each query ``i``: how many events have ``lo_j <= i < hi_j``."""
    keep = lo < hi
    edges = np.bincount(lo[keep], minlength=queries + 1) - np.bincount(hi[keep], minlength=queries + 1)
    return np.cumsum(edges[:queries]).astype(np.int64, copy=False)


def at_most(values: Ints, events: int) -> Ints:
    """``out[j + 1]`` = how many of ``values`` (ints in ``[0, events]``) are ``<= j``, for ``j`` in ``-1..events``.

    For a sorted ``values`` it is ``searchsorted(values, j, side="right")``, by counting instead of searching.
    """
    counts = np.zeros(events + 2, dtype=np.int64)
    np.cumsum(np.bincount(values, minlength=events + 1)[: events + 1], out=counts[1:])
    return counts


@dataclass(frozen=True)
class _Inside:
    """Per event ``j``: the queries whose window ``[start, stop)`` holds ``j`` are ``[first_j, last_j)``.

    ``started[j + 1]`` counts the queries whose window starts at or before ``j``.
    """

    first: Ints
    last: Ints
    started: Ints

    @classmethod
    def of(cls, start: Ints, stop: Ints, events: int) -> _Inside:
        started = at_most(start, events)
        return cls(first=at_most(stop, events)[1:-1], last=started[1:-1], started=started)


def distinct(inside: _Inside, previous: Ints, start: Ints) -> Ints:
    """Distinct counterparties per window: the events whose previous same-counterparty event is before ``start``."""
    seen_from = inside.started[previous + 1]  # the first query whose window starts after ``previous``
    return sweep(np.maximum(inside.first, seen_from), inside.last, len(start))


def label_counts(
    history: History, queries: _Queries, query_keys: Ints, inside: _Inside, label_key: Ints
) -> tuple[Ints, Ints]:
    """(labels known, frauds known) among each window's events: those with ``label_time < t``."""
    known_from = np.searchsorted(query_keys, label_key, side="left")
    lo = np.maximum(inside.first, known_from)
    known = sweep(lo, inside.last, len(queries.time))
    is_fraud = history.label == 1
    return known, sweep(lo[is_fraud], inside.last[is_fraud], len(queries.time))


def fraud_risk(known: Ints, frauds: Ints) -> Floats:
    """Frauds over known labels in the window; 0 when no label is known yet."""
    return np.divide(frauds, known, out=np.zeros(len(known)), where=known > 0)


def evaluate(
    history: History, entity: Ints, time: Floats, amount: Floats, aggregates: Sequence[Aggregate]
) -> dict[str, Floats]:
    """Every aggregate of one role for every query ``(entity, time, amount)``, as float64 arrays in query order."""
    order = sort_order(entity, time)
    queries = _Queries(entity=entity[order], time=time[order], amount=amount[order], is_history=False)
    computed = _evaluate(history, queries, aggregates)
    out: dict[str, Floats] = {}
    for name, values in computed.items():
        out[name] = np.empty(len(time))
        out[name][order] = values
    return out


def evaluate_events(history: History, aggregates: Sequence[Aggregate]) -> dict[str, Floats]:
    """Every aggregate of one role with each of the history's events as the query, in the history's order."""
    queries = _Queries(entity=history.entity, time=history.time, amount=history.amount, is_history=True)
    return _evaluate(history, queries, aggregates)


def _evaluate(history: History, queries: _Queries, aggregates: Sequence[Aggregate]) -> dict[str, Floats]:
    """The aggregates for queries sorted by (entity, time); bounds, sums and sweeps are shared by equal spans."""
    index = _Index.of(history)
    entity_start = queries.entity_start(index)
    bounds: dict[Span, tuple[Ints, Ints]] = {}
    stops: dict[float, Ints] = {}
    sums: dict[Span, Floats] = {}
    for aggregate in aggregates:
        span = (aggregate.window, aggregate.label_delay)
        if span not in bounds:
            delay = aggregate.label_delay
            if delay not in stops:
                stops[delay] = queries.first_at_or_after(index, delay, 0.0)
            bounds[span] = (queries.first_at_or_after(index, delay, aggregate.window), stops[delay])
    counted = _counted(history, index, queries, aggregates, bounds)
    out: dict[str, Floats] = {}
    for aggregate in aggregates:
        span = (aggregate.window, aggregate.label_delay)
        start, stop = bounds[span]
        count = stop - start
        kind = aggregate.aggregate
        if kind == "count":
            value = count.astype(np.float64)
        elif kind in ("sum", "mean", "amount_ratio"):
            if span not in sums:
                sums[span] = window_sum(index, entity_start, start, stop)
            total = sums[span]
            value = total if kind == "sum" else mean(total, count)
            value = amount_ratio(queries.amount, value, count) if kind == "amount_ratio" else value
        elif kind == "seconds_since_last":
            value = seconds_since_last(history, queries.time, start, stop, aggregate.window)
        elif kind == "distinct":
            value = counted[aggregate.name][0].astype(np.float64)
        else:
            value = fraud_risk(*counted[aggregate.name])
        out[aggregate.name] = np.asarray(value, dtype=np.float64)
    return out


def _counted(
    history: History,
    index: _Index,
    queries: _Queries,
    aggregates: Sequence[Aggregate],
    bounds: Mapping[Span, tuple[Ints, Ints]],
) -> dict[str, tuple[Ints, Ints]]:
    """The distinct and label counts by sweeps; what does not depend on the window is computed once."""
    inside: dict[Span, _Inside] = {}
    previous: dict[str, Ints] = {}
    labels: tuple[Ints, Ints] | None = None
    out: dict[str, tuple[Ints, Ints]] = {}
    for aggregate in aggregates:
        if aggregate.aggregate not in ("distinct", "fraud_risk"):
            continue
        span = (aggregate.window, aggregate.label_delay)
        start, stop = bounds[span]
        if span not in inside:
            inside[span] = _Inside.of(start, stop, len(history.time))
        if aggregate.aggregate == "distinct":
            role = str(aggregate.column)
            if role not in previous:
                previous[role] = previous_same(history.entity, history.counterparty[role])
            counts = distinct(inside[span], previous[role], start)
            out[aggregate.name] = (counts, counts)
            continue
        if labels is None:
            labels = _label_keys(history, index, queries)
        out[aggregate.name] = label_counts(history, queries, labels[0], inside[span], labels[1])
    return out


def _label_keys(history: History, index: _Index, queries: _Queries) -> tuple[Ints, Ints]:
    """Comparable keys of the queries ``(entity, t)`` and of each event's ``(entity, label_time)``.

    For a query of the event's entity, ``query_key >= label_key`` exactly when ``t > label_time``.
    """
    if queries.is_history:
        times, query_rank = index.times, index.rank
    else:
        times = np.union1d(index.times, queries.time)
        query_rank = np.searchsorted(times, queries.time, side="left")
    stride = len(times) + 1
    query_keys = queries.entity * stride + query_rank
    label_keys = history.entity * stride + np.searchsorted(times, history.label_time, side="right")
    return query_keys.astype(np.int64, copy=False), label_keys.astype(np.int64, copy=False)


def evaluate_one(
    time: Sequence[float],
    amount: Sequence[float],
    label: Sequence[int],
    label_time: Sequence[float],
    counterparty: Mapping[str, Sequence[int]],
    query: tuple[float, float],
    aggregates: Sequence[Aggregate],
) -> list[float]:
    """Every aggregate of one role, in order, for one query ``(t, amount)`` over one entity's events sorted by time.

    ``counterparty[role][i]`` codes event ``i``'s key of that role. The same rule as :func:`evaluate`, in plain
    Python: for one query over tens of events the fixed cost of the vectorised steps' numpy calls is most of the
    time. Counts, distinct counts, label counts and the last time are exactly :func:`evaluate`'s; sums are exactly
    rounded (``math.fsum``), so they may differ from its cumulative-sum differences in the last bits.
    ``tests/features/test_window_one.py`` holds the two together.
    """
    t, query_amount = query
    bounds: dict[Span, tuple[int, int]] = {}
    out: list[float] = []
    for aggregate in aggregates:
        window, delay = aggregate.window, aggregate.label_delay
        span = (window, delay)
        if span not in bounds:  # evaluate's bounds: the first event at or after t - delay - window, and t - delay
            bounds[span] = (bisect_left(time, t - delay - window), bisect_left(time, t - delay))
        lo, hi = bounds[span]
        count = hi - lo
        kind = aggregate.aggregate
        if kind == "count":
            value = float(count)
        elif kind in ("sum", "mean", "amount_ratio"):
            value = math.fsum(amount[lo:hi])
            if kind != "sum":
                value = value / count if count else 0.0
            if kind == "amount_ratio":
                value = query_amount / value if count and value > 0 else 1.0
        elif kind == "seconds_since_last":
            value = t - time[hi - 1] if count else float(window)
        elif kind == "distinct":
            value = float(len(set(counterparty[str(aggregate.column)][lo:hi])))
        else:
            known = [label[i] for i in range(lo, hi) if label_time[i] < t]
            value = sum(flag == 1 for flag in known) / len(known) if known else 0.0
        out.append(value)
    return out
