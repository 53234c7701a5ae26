"""A reader that keeps its cache between reads sees exactly what a fresh reader sees, after every kind of change.

Changes: new events, labels arriving after and before their transaction, a label replaced, a redelivery, and
time moving on far enough that old events are trimmed. Each store kind runs against its real backend.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest

from fraud_detection.features.definitions import HOUR
from fraud_detection.features.online import EntityState, Transaction
from fraud_detection.features.redis_store import RedisStateStore
from fraud_detection.features.store import EntityStateStore, SQLiteStateStore

HORIZON, GRACE = 6 * HOUR, HOUR
Open = Callable[[bool], EntityStateStore]


@pytest.fixture(params=["sqlite", "redis"])
def open_store(request: pytest.FixtureRequest, tmp_path: Path) -> Open:
    """``open_store(reader)``: a new store object on one shared state (a read-only one for SQLite readers)."""
    path, prefix = tmp_path / "state.db", f"test:{uuid.uuid4().hex}"

    def opener(reader: bool) -> EntityStateStore:
        if request.param == "sqlite":
            return SQLiteStateStore(path, horizon=HORIZON, grace=GRACE, readonly=reader)
        url = request.getfixturevalue("redis_url")
        return RedisStateStore(url, horizon=HORIZON, grace=GRACE, prefix=prefix)

    return opener


def snapshot(state: EntityState) -> list[tuple]:
    return sorted(
        (e.tx_id, e.event_time, e.amount, tuple(sorted(e.keys.items())), e.label, e.label_time) for e in state.events
    )


def test_a_caching_reader_equals_a_fresh_reader(open_store: Open) -> None:
    writer = open_store(False)
    cached = open_store(True)
    rng = np.random.default_rng(5)
    cards, terminals = [f"c{i}" for i in range(4)], [f"t{i}" for i in range(3)]
    applied: list[str] = []
    checked = labelled = 0
    for step in range(400):
        time = step * 120.0  # 13 hours in all: well past horizon + grace, so trims happen
        tx = Transaction(
            tx_id=f"x{step}",
            event_time=time,
            amount=float(rng.gamma(2.0, 20.0)),
            keys={"card": str(rng.choice(cards)), "terminal": str(rng.choice(terminals))},
        )
        if step % 7 == 3:  # a label before its transaction
            writer.apply_label(f"x{step + 1}", int(rng.integers(0, 2)), time + 500.0)
        assert writer.apply(tx) is True
        assert writer.apply(tx) is False
        applied.append(tx.tx_id)
        for tx_id in rng.choice(applied[-40:], size=2):  # labels of recent events, some replaced later
            writer.apply_label(str(tx_id), int(rng.integers(0, 2)), time + float(rng.integers(1, 60)))
            labelled += 1
        if step % 3 == 0:
            keys = {"card": str(rng.choice(cards)), "terminal": str(rng.choice(terminals))}
            fresh = open_store(True)
            expected = fresh.read(keys)
            got = cached.read(keys)
            fresh.close()
            for role in keys:
                assert snapshot(got[role]) == snapshot(expected[role]), (step, role)
            checked += 1
    final = cached.read({"card": "c0"})["card"]
    assert min(final.time) >= 399 * 120.0 - HORIZON - GRACE  # trimmed
    assert (final.label == 1).any() and checked > 100 and labelled > 500
    writer.close()
    cached.close()


def test_a_store_of_the_older_layout_is_refused_not_read_as_empty(redis_url: str, tmp_path: Path) -> None:
    import sqlite3

    import redis

    from fraud_detection.features.store import StoreUnavailable

    prefix = f"test:{uuid.uuid4().hex}"
    redis.Redis.from_url(redis_url).set(f"{prefix}:now", "10.0")  # what the older layout leaves behind
    with pytest.raises(StoreUnavailable, match="older layout"):
        RedisStateStore(redis_url, horizon=HORIZON, prefix=prefix).read({"card": "c1"})
    path = tmp_path / "old.db"
    with sqlite3.connect(path) as old:
        old.execute("CREATE TABLE events (role TEXT, key TEXT, tx_id TEXT, event_time REAL, body TEXT)")
    with pytest.raises(StoreUnavailable, match="older layout"):
        SQLiteStateStore(path, horizon=HORIZON)


def test_an_unchanged_entity_is_handed_out_again_and_a_changed_one_never(open_store: Open) -> None:
    """The reader keeps the state it built while nothing changed; a new event, a label or time moving past an
    event each give the new state at once, never the kept one."""
    writer, reader = open_store(False), open_store(True)

    def tx(n: int, time: float, card: str = "c1") -> Transaction:
        return Transaction(tx_id=f"x{n}", event_time=time, amount=10.0 + n, keys={"card": card, "terminal": "t1"})

    for n, time in enumerate([300.0, 100.0, 200.0]):  # applied out of time order
        writer.apply(tx(n, time))
    first = reader.read({"card": "c1"})["card"]
    assert list(first.time) == [100.0, 200.0, 300.0]  # handed out sorted by time
    assert reader.read({"card": "c1"})["card"] is first  # nothing changed: the same state, not rebuilt
    with pytest.raises(ValueError, match="read-only"):
        first.amount[0] = 0.0  # shared between lookups, so nobody may change it
    writer.apply_label("x1", 1, 150.0)
    labelled = reader.read({"card": "c1"})["card"]
    assert labelled is not first and list(labelled.label) == [1, 0, 0] and labelled.label_time[0] == 150.0
    assert list(first.label) == [0, 0, 0]  # a state handed out never changes: the label went to new columns
    writer.apply(tx(3, 250.0))
    grown = reader.read({"card": "c1"})["card"]
    assert list(grown.time) == [100.0, 200.0, 250.0, 300.0]
    assert list(labelled.time) == [100.0, 200.0, 300.0] and list(labelled.amount) == [11.0, 12.0, 10.0]  # nor by a sort
    assert reader.read({"card": "c1"})["card"] is grown
    writer.apply(tx(4, 100.0 + HORIZON + GRACE + 50.0, card="c2"))  # "now" moves: x1 (t=100) falls out
    trimmed = reader.read({"card": "c1"})["card"]
    assert list(trimmed.time) == [200.0, 250.0, 300.0]
    assert snapshot(trimmed) == snapshot(open_store(True).read({"card": "c1"})["card"])
    writer.close()
    reader.close()
