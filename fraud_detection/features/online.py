"""Online features: one transaction's features from its entities' stored state, by the offline arithmetic.

The state of an entity is its recent events as columns (``EntityState``); ``features_for`` turns each role's
state into a one-entity ``History`` and asks ``window.evaluate`` for the one query, so the online value is the
offline value whenever the state holds every event the windows reach (the stores keep ``FeatureSet.horizon`` seconds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from numpy.typing import NDArray

from fraud_detection.features.definitions import Aggregate, FeatureSet
from fraud_detection.features.request import from_mapping, request_features
from fraud_detection.features.window import Floats, History, Ints, evaluate
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


def features_for(
    transaction: Transaction, states: Mapping[str, EntityState], feature_set: FeatureSet
) -> dict[str, float]:
    """The feature set's values for ``transaction``, given each role's state read before applying it."""
    values: dict[str, float] = {}
    by_role: dict[str, list[Aggregate]] = {}
    for aggregate in feature_set.aggregates:
        by_role.setdefault(aggregate.entity, []).append(aggregate)
    query_time = np.array([transaction.event_time])
    query_amount = np.array([transaction.amount])
    for role, aggregates in by_role.items():
        if role not in states:
            raise KeyError(f"no state read for role {role!r} (transaction {transaction.tx_id!r})")
        history = _history(states[role], {str(a.column) for a in aggregates if a.aggregate == "distinct"})
        computed = evaluate(history, np.zeros(1, dtype=np.int64), query_time, query_amount, aggregates)
        values.update({name: float(array[0]) for name, array in computed.items()})
    row = {**transaction.request, AMOUNT: transaction.amount, EVENT_TIME: transaction.event_time}
    values.update(
        {name: float(array[0]) for name, array in request_features(from_mapping(row), feature_set.request).items()}
    )
    return {name: values[name] for name in feature_set.names}


def _history(state: EntityState, counterparties: set[str]) -> History:
    size = len(state)
    return History.build(
        entity=np.zeros(size, dtype=np.int64),
        time=state.time,
        amount=state.amount,
        label=state.label,
        label_time=state.label_time,
        counterparty={role: state.keys.get(role, np.zeros(size, dtype=np.int64)) for role in counterparties},
    )
