"""Online features: one transaction's features from its entities' stored state, by the offline arithmetic.

The state of an entity is its recent events as columns (``EntityState``); ``features_for`` hands each role's events
to ``window.evaluate_one``, the window rule for one query, so the online value is the offline value whenever the
state holds every event the windows reach (the stores keep ``FeatureSet.horizon`` seconds).
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from fraud_detection.features.definitions import Aggregate, FeatureSet
from fraud_detection.features.request import request_values
from fraud_detection.features.window import Floats, Ints, evaluate_one
from fraud_detection.transactions.frame import AMOUNT, EVENT_TIME


@dataclass(frozen=True)
class Event:
    """What a transaction and an entity's stored event both carry: id, time, amount and the keys by role."""

    tx_id: str
    event_time: float
    amount: float
    keys: Mapping[str, str]


@dataclass(frozen=True)
class Transaction(Event):
    """A transaction as the stream or the predictor sees it: its keys by role, and its request columns."""

    request: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not math.isfinite(self.event_time) or not math.isfinite(self.amount) or self.amount < 0:
            raise ValueError(
                f"transaction {self.tx_id!r}: event_time and amount must be finite and amount >= 0, "
                f"got event_time={self.event_time!r}, amount={self.amount!r}"
            )


@dataclass(frozen=True)
class StoredEvent(Event):
    """One past event of an entity, with its label once known (``label_time`` is ``inf`` until then)."""

    label: int = 0
    label_time: float = math.inf


@dataclass(frozen=True, eq=False)
class EntityState:
    """What the store holds for one entity: its events inside the retained horizon, as columns, in any order.

    ``keys[role]`` codes each event's key of that role (``""`` when the event has none) into ``names[role]``,
    so the distinct counts need no factorising per lookup. Two states are equal when their ``events`` are.
    """

    tx_id: NDArray[np.object_] = field(default_factory=lambda: np.empty(0, dtype=object))
    time: Floats = field(default_factory=lambda: np.empty(0))
    amount: Floats = field(default_factory=lambda: np.empty(0))
    label: Ints = field(default_factory=lambda: np.empty(0, dtype=np.int64))
    label_time: Floats = field(default_factory=lambda: np.empty(0))
    keys: Mapping[str, Ints] = field(default_factory=dict)
    names: Mapping[str, Sequence[str]] = field(default_factory=dict)

    @classmethod
    def made(cls, **columns: Any) -> EntityState:
        """``EntityState(**columns)`` (every field given) at a quarter of the cost: a frozen dataclass's ``__init__``
        sets each field through ``object.__setattr__``, and a cache hands out hundreds of states a batch."""
        state = object.__new__(cls)
        state.__dict__.update(columns)
        return state

    @classmethod
    def of(cls, events: Sequence[StoredEvent]) -> EntityState:
        """A state from stored events."""
        roles = sorted({role for event in events for role in event.keys})
        keys: dict[str, Ints] = {}
        names: dict[str, Sequence[str]] = {}
        for role in roles:
            codes, uniques = pd.factorize(np.array([e.keys.get(role, "") for e in events], dtype=object))
            keys[role], names[role] = codes.astype(np.int64), [str(name) for name in uniques]
        return cls(
            tx_id=np.array([e.tx_id for e in events], dtype=object),
            time=np.array([e.event_time for e in events], dtype=np.float64),
            amount=np.array([e.amount for e in events], dtype=np.float64),
            label=np.array([e.label for e in events], dtype=np.int64),
            label_time=np.array([e.label_time for e in events], dtype=np.float64),
            keys=keys,
            names=names,
        )

    @property
    def events(self) -> tuple[StoredEvent, ...]:
        """The events as objects, in the state's order (a key ``""`` means the event had none of that role)."""
        named = {role: [self.names[role][code] for code in codes] for role, codes in self.keys.items()}
        keys = [{role: names[i] for role, names in named.items() if names[i]} for i in range(len(self.time))]
        return tuple(
            StoredEvent(
                tx_id=str(self.tx_id[i]),
                event_time=float(self.time[i]),
                amount=float(self.amount[i]),
                keys=keys[i],
                label=int(self.label[i]),
                label_time=float(self.label_time[i]),
            )
            for i in range(len(self.time))
        )

    def __len__(self) -> int:
        return len(self.time)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, EntityState) and sorted(self.events, key=_by_id) == sorted(other.events, key=_by_id)

    __hash__ = None  # type: ignore[assignment]


def _by_id(event: StoredEvent) -> str:
    return event.tx_id


@dataclass(frozen=True)
class _Plan:
    """What ``features_for`` needs of a feature set, worked out once per set (its names are computed properties)."""

    names: tuple[str, ...]
    roles: tuple[tuple[str, tuple[Aggregate, ...], tuple[str, ...], tuple[str, ...]], ...]
    """Each role with its aggregates, their names and the counterparty roles its distinct counts read."""


_PLANS: dict[int, tuple[FeatureSet, _Plan]] = {}


def _plan(feature_set: FeatureSet) -> _Plan:
    held = _PLANS.get(id(feature_set))
    if held is not None and held[0] is feature_set:
        return held[1]
    by_role: dict[str, list[Aggregate]] = {}
    for aggregate in feature_set.aggregates:
        by_role.setdefault(aggregate.entity, []).append(aggregate)
    roles = tuple(
        (
            role,
            tuple(aggregates),
            tuple(a.name for a in aggregates),
            tuple(sorted({str(a.column) for a in aggregates if a.aggregate == "distinct"})),
        )
        for role, aggregates in by_role.items()
    )
    plan = _Plan(names=feature_set.names, roles=roles)
    if len(_PLANS) >= 16:  # a process serves one or two sets; never grow without bound
        _PLANS.clear()
    _PLANS[id(feature_set)] = (feature_set, plan)  # the set is held, so its id is not reused while cached
    return plan


def features_for(
    transaction: Transaction, states: Mapping[str, EntityState], feature_set: FeatureSet
) -> dict[str, float]:
    """The feature set's values for ``transaction``, given each role's state read before applying it.

    Each role's aggregates come from :func:`fraud_detection.features.window.evaluate_one`, the window rule for a
    single query (the stream's batches and the offline frame use the vectorised :func:`window.evaluate`).
    """
    plan = _plan(feature_set)
    values: dict[str, float] = {}
    query = (transaction.event_time, transaction.amount)
    for role, aggregates, names, counterparties in plan.roles:
        state = states.get(role)
        if state is None:
            raise KeyError(f"no state read for role {role!r} (transaction {transaction.tx_id!r})")
        columns, codes = _by_time(state, counterparties)
        values.update(zip(names, evaluate_one(*columns, codes, query, aggregates), strict=True))
    row = {**transaction.request, AMOUNT: transaction.amount, EVENT_TIME: transaction.event_time}
    values.update(request_values(row, feature_set.request))
    return {name: values[name] for name in plan.names}


_Columns = tuple[tuple[list[float], list[float], list[int], list[float]], dict[str, list[int]]]
_HELD: dict[int, tuple[EntityState, Sequence[str], _Columns]] = {}
"""``_by_time`` of read-only states by id (the state is held, so its id is not reused while cached): the stores hand
out the same read-only state while an entity is unchanged, so its lists are made once."""


def _by_time(state: EntityState, counterparties: Sequence[str]) -> _Columns:
    """``_sorted_lists``, kept for a state whose columns cannot change (read-only arrays)."""
    held = _HELD.get(id(state))
    if held is not None and held[0] is state and held[1] == counterparties:
        return held[2]
    columns = _sorted_lists(state, counterparties)
    arrays = (state.time, state.amount, state.label, state.label_time, *state.keys.values())
    if not any(array.flags.writeable for array in arrays):
        if len(_HELD) >= 8_192:  # bounded: never grow without limit
            _HELD.clear()
        _HELD[id(state)] = (state, counterparties, columns)
    return columns


def _sorted_lists(state: EntityState, counterparties: Sequence[str]) -> _Columns:
    """The state's time, amount, label and label time, and its counterparty codes, as lists sorted by time (stably:
    the stores hand events in apply order, so they are almost always sorted already)."""
    columns = (state.time.tolist(), state.amount.tolist(), state.label.tolist(), state.label_time.tolist())
    codes = {role: _codes(state, role) for role in counterparties}
    time = columns[0]
    if all(earlier <= later for earlier, later in itertools.pairwise(time)):
        return columns, codes
    order = sorted(range(len(time)), key=time.__getitem__)
    time, amount, label, label_time = ([column[i] for i in order] for column in columns)
    return (time, amount, label, label_time), {role: [column[i] for i in order] for role, column in codes.items()}


def _codes(state: EntityState, role: str) -> list[int]:
    """Each event's code for its key of ``role``; all 0 (one "no key" value) when no event has one."""
    codes = state.keys.get(role)
    return codes.tolist() if codes is not None else [0] * len(state)
