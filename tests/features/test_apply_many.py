"""A batch applied with ``apply_many`` leaves the store exactly as the same transactions applied one by one.

Exactly: every event a reader can see with its label and sequence number, the applied ids, the labels and the clock
(SQLite: a batch writes one ``changes`` row an entity, so its rows are compared event by event), or every key
(Redis), after every batch. The batches
hold what makes the batch path differ from the one-by-one path if it is wrong: an id twice in a batch, a batch
redelivered, labels that came before their transaction (some so old that an earlier apply in the batch trims them),
a jump in time past the retained horizon in the middle of a batch, transactions too old to apply, and an id reused
after its first use was trimmed. ``read_many`` then equals ``read`` entity by entity.
"""

from __future__ import annotations

import math
import uuid
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from fraud_detection.features.definitions import HOUR
from fraud_detection.features.online import EntityState, Transaction
from fraud_detection.features.redis_store import RedisStateStore, _text
from fraud_detection.features.sqlite_layout import parsed_items
from fraud_detection.features.store import EntityStateStore, SQLiteStateStore, StoreUnavailable, entities_of

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
        now = conn.execute("SELECT now FROM clock").fetchone()[0]
        cutoff = -math.inf if now is None else now - store.retained
        events: dict[tuple[str, str, str], Any] = {}
        for role, key, body in conn.execute("SELECT role, key, body FROM changes ORDER BY role, key, seq"):
            for item in parsed_items(body):  # a later change of an event (its label) replaces the earlier
                events[(role, key, item[0])] = item
        held = {  # an applied id's ``at`` names a row of its batch, which differs from the one-by-one row
            table: conn.execute(f"SELECT {columns} FROM {table} ORDER BY 1").fetchall()
            for table, columns in (("applied", "tx_id, event_time"), ("labels", "*"), ("clock", "*"))
        }
        # Rows whose latest event fell out of the retained span are gone; an older event in a newer row is masked.
        visible = sorted((entity, orjson.dumps(item)) for entity, item in events.items() if item[1] >= cutoff)
        return {"events": visible, **held}
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


Label = tuple[str, int, float]


def _events(state: EntityState) -> set[tuple[Any, ...]]:
    """A state's events as comparable tuples, the id first."""
    return {
        (e.tx_id, e.event_time, e.amount, tuple(sorted(e.keys.items())), e.label, e.label_time) for e in state.events
    }


def batches(seed: int = 11) -> list[tuple[list[Transaction], list[Label]]]:
    """Sixty batches, each with the labels applied before it (see the module docstring)."""
    rng = np.random.default_rng(seed)
    time, sent = 0.0, list[Transaction]()
    made: list[tuple[list[Transaction], list[Label]]] = []
    for _ in range(60):
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
        labels: list[Label] = []
        for _ in range(int(rng.integers(0, 4))):  # labels, some for transactions still to come, some long known
            tx_id = f"x{len(sent) + 100 + int(rng.integers(-20, 20))}"
            labels.append(
                (tx_id, int(rng.integers(0, 2)), time + float(rng.choice([-HORIZON - GRACE - 100.0, -60.0, 600.0])))
            )
        made.append((batch, labels))
    return made


def test_a_batch_applied_at_once_equals_its_transactions_applied_one_by_one(open_store: Open) -> None:
    one_by_one, batched = open_store("one"), open_store("batch")
    sent: list[Transaction] = []
    for batch_number, (batch, labels) in enumerate(batches()):
        for label in labels:
            for store in (one_by_one, batched):
                store.apply_label(*label)
        expected = [one_by_one.apply(transaction) for transaction in batch]
        assert batched.apply_many(batch) == expected, batch_number
        assert dump(batched) == dump(one_by_one), batch_number
        sent += batch
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


def test_apply_and_read_applies_as_apply_many_and_hands_the_state_before_the_batch_and_the_batch(
    open_store: Open, request: pytest.FixtureRequest
) -> None:
    """``apply_and_read`` leaves the store as ``apply_many`` does, and each state it hands holds what a reader found
    before the batch plus the batch's applied events: the events a reader finds after the batch, and below that
    "now"'s cutoff only events held before or added by the batch (those its own applies trimmed)."""
    plain, both = open_store("plain"), open_store("both")
    witness: EntityStateStore  # a second reader of the same store
    if isinstance(both, SQLiteStateStore):
        witness = SQLiteStateStore(both.path, horizon=HORIZON, grace=GRACE, readonly=True)
    else:
        assert isinstance(both, RedisStateStore)
        witness = RedisStateStore(
            request.getfixturevalue("redis_url"), horizon=HORIZON, grace=GRACE, prefix=both.prefix
        )
    trimmed_seen = 0
    for batch_number, (batch, labels) in enumerate(batches(seed=5)):
        for label in labels:
            for store in (plain, both):
                store.apply_label(*label)
        entities = entities_of(batch)
        before = witness.read_many(entities)
        flags, states = both.apply_and_read(batch)
        assert flags == plain.apply_many(batch), batch_number
        assert dump(both) == dump(plain), batch_number
        after = witness.read_many(entities)
        added = {t.tx_id for t, ok in zip(batch, flags, strict=True) if ok}
        assert set(states) == set(entities)
        for entity in entities:
            held = _events(states[entity])
            assert _events(after[entity]) <= held, (batch_number, entity)
            assert {e[0] for e in _events(before[entity])} <= {e[0] for e in held}, (batch_number, entity)
            extra = held - _events(after[entity])
            assert {e[0] for e in extra} <= {e[0] for e in _events(before[entity])} | added, (batch_number, entity)
            trimmed_seen += len(extra)
    assert trimmed_seen > 0  # some batches trimmed what their states still hand out
    assert both.apply_and_read([]) == ([], {})
    for store in (plain, both, witness):
        store.close()


def test_the_writer_reads_what_another_writer_added_between_its_batches(tmp_path: Path) -> None:
    """The embedded store's writer asks the file only for entities its cache does not hold while every write was its
    own; once another writer (or a label by another writer) came between, each state it hands still holds every event
    a fresh reader finds after the batch."""
    path = tmp_path / "shared.db"
    writer = SQLiteStateStore(path, horizon=HORIZON, grace=GRACE)
    other = SQLiteStateStore(path, horizon=HORIZON, grace=GRACE)
    witness = SQLiteStateStore(path, horizon=HORIZON, grace=GRACE, readonly=True)
    checked = 0
    for batch_number, (batch, labels) in enumerate(batches(seed=11)):
        for label in labels:
            (other if batch_number % 2 else writer).apply_label(*label)
        if batch_number % 4 == 3:
            other.apply_many(batch)
            continue
        _, states = writer.apply_and_read(batch)
        after = witness.read_many(entities_of(batch))
        for entity, state in states.items():
            assert _events(after[entity]) <= _events(state), (batch_number, entity)
            checked += len(after[entity])
    assert checked > 100
    for store in (writer, other, witness):
        store.close()


def test_the_writers_progress_is_recorded_with_its_batch_and_never_moves_back(open_store: Open) -> None:
    """``apply_many`` and ``apply_and_read`` with the stream writer's progress apply as without it, and the store
    then gives that progress by partition of the topic; a redelivered batch's older offsets leave it, and a batch of
    nothing to apply (every message a reject) still moves it."""
    plain, store, reading = open_store("plain"), open_store("progress"), open_store("reading")
    assert store.progress("tx") == {}
    (first, _), (second, _) = batches(seed=3)[:2]
    expected = plain.apply_many(first)
    assert reading.apply_and_read(first, {("tx", 0): 40})[0] == expected
    assert reading.apply_and_read([], {("tx", 1): 2}) == ([], {})
    assert reading.progress("tx") == {0: 40, 1: 2}
    reading.close()
    assert store.apply_many(first, {("tx", 0): 40, ("tx", 2): 7}) == expected
    assert store.progress("tx") == {0: 40, 2: 7}
    assert store.progress("other") == {}
    assert store.apply_many(first, {("tx", 0): 12}) == [False] * len(first)  # redelivered, from older offsets
    assert store.progress("tx") == {0: 40, 2: 7}
    assert store.apply_many([], {("tx", 1): 3, ("other", 0): 5}) == []
    assert store.apply_many(second, {("tx", 0): 80}) == plain.apply_many(second)
    assert store.progress("tx") == {0: 80, 1: 3, 2: 7}
    assert store.progress("other") == {0: 5}
    held = {name: value for name, value in dump(store).items() if name != ":progress"}
    assert held == dump(plain)  # the same state as applying without progress
    plain.close()
    store.close()


def test_a_batch_whose_progress_cannot_be_recorded_applies_nothing(tmp_path: Path) -> None:
    """The embedded store writes a batch and its progress in one transaction: when the progress cannot be written,
    the batch's transactions are not applied either, and the error names the file."""
    store = SQLiteStateStore(tmp_path / "state.db", horizon=HORIZON, grace=GRACE)
    batch = batches(seed=3)[0][0]
    before = dump(store)
    store._conn.execute("DROP TABLE progress")
    with pytest.raises(StoreUnavailable, match=r"state\.db failed: no such table: progress"):
        store.apply_many(batch, {("tx", 0): 40})
    assert dump(store) == before
    assert store.apply_many(batch) == SQLiteStateStore(tmp_path / "fresh.db", horizon=HORIZON, grace=GRACE).apply_many(
        batch
    )
    store.close()


def test_batches_longer_than_a_script_call_takes_apply_and_read_as_sqlite_does(
    tmp_path: Path, request: pytest.FixtureRequest
) -> None:
    """The Redis scripts cut a list of ids into calls of a thousand (``_MANY``): a batch of 2,500 on one card, applied,
    redelivered, read back after a reader last saw none of it, and with a label each, ends as SQLite's does."""
    redis = RedisStateStore(
        request.getfixturevalue("redis_url"), horizon=HORIZON, grace=GRACE, prefix=f"test:{uuid.uuid4().hex}:long"
    )
    sqlite = SQLiteStateStore(tmp_path / "long.db", horizon=HORIZON, grace=GRACE)
    stores: list[EntityStateStore] = [redis, sqlite]
    batch = [
        Transaction(
            tx_id=f"l{i}", event_time=float(i), amount=float(i % 7), keys={"card": "c", "terminal": f"t{i % 3}"}
        )
        for i in range(2_500)
    ]
    for i in range(0, 2_500, 2):  # labels that came first, each read back with its event
        for store in stores:
            store.apply_label(f"l{i}", i % 4 // 2, float(i) + 0.5)
    results = [store.apply_and_read(batch) for store in stores]
    assert results[0][0] == results[1][0] == [True] * 2_500
    assert _events(results[0][1][("card", "c")]) == _events(results[1][1][("card", "c")])
    assert [store.apply_many(batch) for store in stores] == [[False] * 2_500] * 2  # every id found again
    readers: list[EntityStateStore] = [
        RedisStateStore(request.getfixturevalue("redis_url"), HORIZON, GRACE, prefix=redis.prefix),
        SQLiteStateStore(sqlite.path, HORIZON, GRACE, readonly=True),
    ]
    read = [reader.read({"card": "c"})["card"] for reader in readers]
    assert len(read[0].tx_id) == 2_500 and sum(read[0].label) == 625
    assert _events(read[0]) == _events(read[1])
    for store in [*stores, *readers]:
        store.close()
