"""Online features: one transaction's features from its entities' stored state, by the offline arithmetic.

The state of an entity is its recent events (``EntityState``); ``features_for`` turns each role's state into a
one-entity ``History`` and asks ``window.evaluate`` for the one query, so the online value is the offline value
whenever the state holds every event the windows reach (the stores keep ``FeatureSet.horizon`` seconds).
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pandas as pd

from fraud_detection.features.definitions import Aggregate, FeatureSet
from fraud_detection.features.request import from_mapping, request_features
from fraud_detection.features.window import History, evaluate
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


@dataclass(frozen=True)
class EntityState:
    """What the store holds for one entity: its events inside the longest window, in any order."""

    events: tuple[StoredEvent, ...] = ()


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
    events = state.events
    return History.build(
        entity=np.zeros(len(events), dtype=np.int64),
        time=np.array([e.event_time for e in events], dtype=np.float64),
        amount=np.array([e.amount for e in events], dtype=np.float64),
        label=np.array([e.label for e in events], dtype=np.int64),
        label_time=np.array([e.label_time for e in events], dtype=np.float64),
        counterparty={
            role: pd.factorize(np.array([e.keys.get(role, "") for e in events], dtype=object))[0].astype(np.int64)
            for role in counterparties
        },
    )
