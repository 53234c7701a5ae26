"""``features_for`` keeps the sorted lists of a read-only state it saw, never of a state that may change.

The stores hand out the same read-only state while an entity is unchanged, and a new one once it changed; a reader
that kept everything between reads must give the features a state built afresh from the same events gives.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fraud_detection.features.definitions import DAY, HOUR, Aggregate, FeatureSet, HourOfDay
from fraud_detection.features.online import EntityState, StoredEvent, Transaction, features_for
from fraud_detection.features.store import SQLiteStateStore

FEATURES = FeatureSet(
    aggregates=(
        Aggregate(entity="card", aggregate="count", window=HOUR),
        Aggregate(entity="card", aggregate="sum", column="amount", window=DAY),
        Aggregate(entity="card", aggregate="seconds_since_last", window=DAY),
        Aggregate(entity="card", aggregate="distinct", column="terminal", window=DAY),
        Aggregate(entity="terminal", aggregate="fraud_risk", window=DAY),
    ),
    request=(HourOfDay(),),
)


def test_a_state_whose_columns_may_change_is_read_afresh_every_time() -> None:
    events = [StoredEvent(tx_id=f"e{i}", event_time=100.0 * i, amount=10.0, keys={"card": "c"}) for i in range(5)]
    state = EntityState.of(events)
    query = Transaction(tx_id="q", event_time=1_000.0, amount=1.0, keys={"card": "c", "terminal": "t"})
    states = {"card": state, "terminal": EntityState()}
    assert features_for(query, states, FEATURES)["card_amount_sum_1d"] == 50.0
    state.amount[:] = 20.0  # a caller's own state, changed in place
    assert features_for(query, states, FEATURES)["card_amount_sum_1d"] == 100.0


def test_a_caching_reader_gives_the_features_of_fresh_states_after_every_change(tmp_path: Path) -> None:
    writer = SQLiteStateStore(tmp_path / "state.db", horizon=DAY, grace=HOUR)
    reader = SQLiteStateStore(tmp_path / "state.db", horizon=DAY, grace=HOUR, readonly=True)
    rng = np.random.default_rng(3)
    cards, terminals = ["c0", "c1", "c2"], ["t0", "t1"]
    compared = 0
    for step in range(300):
        time = step * 600.0
        keys = {"card": str(rng.choice(cards)), "terminal": str(rng.choice(terminals))}
        query = Transaction(tx_id=f"x{step}", event_time=time, amount=float(rng.gamma(2.0, 20.0)), keys=keys)
        for _ in range(2):  # twice: the second read hands out the states kept from the first
            held = reader.read(keys)
            fresh = {role: EntityState.of(state.events) for role, state in held.items()}
            assert features_for(query, held, FEATURES) == features_for(query, fresh, FEATURES), step
            compared += 1
        writer.apply(query)
        if step % 4 == 1:
            writer.apply_label(f"x{step - 1}", int(rng.integers(0, 2)), time + 300.0)
    assert compared == 600
    writer.close()
    reader.close()
