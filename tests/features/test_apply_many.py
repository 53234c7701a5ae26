"""A batch applied with ``apply_many`` leaves the store exactly as the same transactions applied one by one.

Exactly: every row (SQLite) or key (Redis), its sequence numbers and the clock, after every batch. The batches
hold what makes the batch path differ from the one-by-one path if it is wrong: an id twice in a batch, a batch
redelivered, labels that came before their transaction (some so old that an earlier apply in the batch trims them),
a jump in time past the retained horizon in the middle of a batch, transactions too old to apply, and an id reused
after its first use was trimmed. ``read_many`` then equals ``read`` entity by entity.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fraud_detection.features.definitions import HOUR
from fraud_detection.features.online import Transaction
from fraud_detection.features.redis_store import RedisStateStore, _text
from fraud_detection.features.store import EntityStateStore, SQLiteStateStore

HORIZON, GRACE = 6 * HOUR, HOUR
Open = Callable[[str], EntityStateStore]


@pytest.fixture(params=["sqlite", "redis"])
def kind(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def open_store(kind: str, request: pytest.FixtureRequest, tmp_path: Path) -> Open:
    """``open_store(name)``: a store of its own (a file or a key prefix) for each name."""

    def opener(name: str) -> EntityStateStore:
        if kind == "sqlite":
            return SQLiteStateStore(tmp_path / f"{name}.db", horizon=HORIZON, grace=GRACE)
        url = request.getfixturevalue("redis_url")
        return RedisStateStore(url, horizon=HORIZON, grace=GRACE, prefix=f"test:{uuid.uuid4().hex}:{name}")

    return opener


def dump(store: EntityStateStore) -> Any:
    """Everything the store holds, in a comparable form (key names without the store's own prefix)."""
    if isinstance(store, SQLiteStateStore):
        conn = store._conn
        return {
            table: conn.execute(f"SELECT * FROM {table} ORDER BY 1, 2, 3").fetchall()
            if table == "events"
            else conn.execute(f"SELECT * FROM {table} ORDER BY 1").fetchall()
            for table in ("events", "applied", "labels", "clock")
        }
    assert isinstance(store, RedisStateStore)
    client = store._client
    held: dict[str, Any] = {}
    for name in client.scan_iter(match=f"{store.prefix}:*"):
        kind = _text(client.type(name))
        short = name.decode()[len(store.prefix) :]
        if kind == "zset":
            held[short] = client.zrange(name, 0, -1, withscores=True)
        elif kind == "hash":
            held[short] = client.hgetall(name)
        else:
            held[short] = client.get(name)
    return {name: value for name, value in held.items() if value}  # Redis drops an emptied set itself


def test_a_batch_applied_at_once_equals_its_transactions_applied_one_by_one(open_store: Open) -> None:
    one_by_one, batched = open_store("one"), open_store("batch")
    rng = np.random.default_rng(11)
    time, sent = 0.0, list[Transaction]()
    for batch_number in range(60):
        batch: list[Transaction] = []
        for _ in range(int(rng.integers(1, 40))):
            if rng.random() < 0.04:
                time += HORIZON + GRACE + 1.0  # everything held so far falls out, in the middle of the batch
            time += float(rng.choice([0.0, 30.0, 300.0]))  # many ties
            if sent and rng.random() < 0.1:
                batch.append(sent[int(rng.integers(max(0, len(sent) - 50), len(sent)))])  # again: in or across batches
                continue
            late = rng.random() < 0.03  # older than the retained horizon
            reused = len(sent) > 40 and rng.random() < 0.05  # an id used before, maybe trimmed since
            tx_id = sent[int(rng.integers(0, len(sent) - 20))].tx_id if reused else f"x{len(sent) + 100}"
            batch.append(
                Transaction(
                    tx_id=tx_id,
                    event_time=time - (HORIZON + GRACE + 600.0 if late else 0.0),
                    amount=float(rng.gamma(2.0, 20.0)),
                    keys={"card": f"c{int(rng.integers(0, 6))}", "terminal": f"t{int(rng.integers(0, 3))}"},
                )
            )
            sent.append(batch[-1])
        for _ in range(int(rng.integers(0, 4))):  # labels, some for transactions still to come, some long known
            tx_id = f"x{len(sent) + 100 + int(rng.integers(-20, 20))}"
            label = int(rng.integers(0, 2))
            label_time = time + float(rng.choice([-HORIZON - GRACE - 100.0, -60.0, 600.0]))
            for store in (one_by_one, batched):
                store.apply_label(tx_id, label, label_time)
        expected = [one_by_one.apply(transaction) for transaction in batch]
        assert batched.apply_many(batch) == expected, batch_number
        assert dump(batched) == dump(one_by_one), batch_number
    assert batched.apply_many(sent[-30:]) == [False] * 30  # a redelivered batch changes nothing
    assert dump(batched) == dump(one_by_one)
    assert batched.apply_many([]) == []

    entities = [(role, f"{role[0]}{i}") for role in ("card", "terminal") for i in range(7)]
    many = batched.read_many(entities + entities[:3])
    assert set(many) == set(entities)
    for role, key in entities:
        assert sorted(many[(role, key)].tx_id) == sorted(one_by_one.read({role: key})[role].tx_id)
        assert len(many[(role, key)].tx_id) == len(set(many[(role, key)].tx_id))
    assert sum(len(state.tx_id) for state in many.values()) > 10
    one_by_one.close()
    batched.close()
