"""The skew test of the stream: raw transactions and their labels replayed in time order through the stream scorer,
against a real ``redis-server`` or the embedded SQLite store and the real broker, with a kill -9 midway, give the
offline probabilities."""

from __future__ import annotations

import os
import signal
import time
from collections.abc import Iterator
from contextlib import closing
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from fraud_detection.features.definitions import GRACE
from streaming import messages
from tests.conftest import redis_server
from tests.serving.transaction_model import TransactionModel, make_transaction_model
from tests.streaming.broker import Broker, read_topic
from tests.streaming.conftest import ScorerProcess, topics_for

pytestmark = pytest.mark.slow

PREFIX = "fraud:features"
"""The Redis store's key prefix (the default)."""

LONG_GRACE = 30 * 86_400.0
"""A grace that keeps the whole replay (it spans ten days)."""

Item = tuple[str, bytes, bytes]
"""(topic, key, value) to produce."""


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> TransactionModel:
    return make_transaction_model(tmp_path_factory.mktemp("transactions") / "model")


@pytest.fixture()
def redis_url() -> Iterator[str]:
    with redis_server() as url:
        yield url


def replay_plan(model: TransactionModel, transactions: str, labels: str) -> list[Item]:
    """Every transaction in time order, keyed by its customer, each label placed before the first transaction at or
    after its label time (a label is late: it comes a day or so after its transaction)."""
    plan: list[Item] = []
    known = model.label_times()
    j = 0
    times = model.raw["tx_time"].to_numpy()
    for i in range(len(model.raw)):
        while j < len(known) and known[j][0] < times[i]:
            label_time, tx_id, label = known[j]
            value = {"tx_id": str(tx_id), "label": int(label), "label_time": float(label_time)}
            plan.append((labels, str(tx_id).encode(), orjson.dumps(value)))
            j += 1
        row = model.source_row(i)
        plan.append((transactions, str(row["customer_id"]).encode(), orjson.dumps(row)))
    return plan


def produce(broker: Broker, plan: list[Item]) -> None:
    """Produce in order; every label is acknowledged before the next transaction is produced (as a label system
    that wrote it earlier would have it)."""
    from confluent_kafka import Producer

    producer = Producer(broker.config(acks="all", **{"linger.ms": 2}))
    previous = ""
    for topic, key, value in plan:
        if previous and topic != previous:
            assert producer.flush(30) == 0
        producer.produce(topic, value, key)
        previous = topic
    assert producer.flush(30) == 0


def committed(broker: Broker, group: str, topic: str) -> int:
    """Messages of ``topic`` (one partition) committed by ``group``."""
    from confluent_kafka import Consumer, TopicPartition

    consumer = Consumer(broker.config(**{"group.id": group, "enable.auto.commit": False}))
    try:
        return max(consumer.committed([TopicPartition(topic, 0)], timeout=10)[0].offset, 0)
    finally:
        consumer.close()


def sqlite_applied(path: Path) -> int:
    """How many transaction ids the embedded store at ``path`` holds as applied (0 before the file exists)."""
    import sqlite3

    if not path.exists():
        return 0
    with closing(sqlite3.connect(f"file:{path}?mode=ro", uri=True)) as conn:
        try:
            return int(conn.execute("SELECT count(*) FROM applied").fetchone()[0])
        except sqlite3.OperationalError:  # the writer has not made its tables yet
            return 0


@pytest.mark.parametrize("kind", ["redis", "sqlite", "sqlite-applier"])
def test_a_replay_with_late_labels_ties_and_a_kill_9_gives_the_offline_probabilities_and_applies_each_once(
    broker: Broker, model: TransactionModel, kind: str, request: pytest.FixtureRequest, tmp_path: Path
) -> None:
    """``sqlite-applier``: a separate applier (``FRAUD_ROLE=applier``) applies, killed -9 midway, beside a scorer that
    waits for it and only reads. ``redis``: a second scorer that only reads and waits for the writer (a shadow, with
    its own group and results topic) scores beside the one that applies, which is killed -9 midway; its results are
    the offline probabilities too."""
    name = {"redis": "raw", "sqlite": "rawsql", "sqlite-applier": "rawapp"}[kind]
    separate = kind == "sqlite-applier"
    topics = topics_for(name)
    labels_topic = f"{name}-labels"
    # One partition: a terminal's transactions come from every customer, and only one partition keeps them in order.
    broker.create_topics(topics["input_topic"], labels_topic, partitions=1)
    broker.create_topics(topics["output_topic"], topics["dead_letter_topic"])
    waiting_topics = topics
    if kind == "redis":
        shadow = {"output_topic": f"{name}-shadow-out", "dead_letter_topic": f"{name}-shadow-dlq"}
        waiting_topics = {**topics, **shadow, "group_id": f"{name}-shadow"}
        broker.create_topics(*shadow.values())
    plan = replay_plan(model, topics["input_topic"], labels_topic)
    n = len(model.raw)
    times = model.raw["tx_time"].to_numpy()
    assert len(np.unique(times)) < 0.8 * n, "the replay must hold ties in time"
    risk = [name for name in model.features.columns if "fraud_risk" in name]
    assert (model.features[risk].to_numpy() > 0).any(), "labels must move some feature in the replay"
    if kind == "redis":
        import redis

        redis_url = request.getfixturevalue("redis_url")
        client = redis.Redis.from_url(redis_url)
        store_env = {"FRAUD_FEATURE_STORE_URL": redis_url}

        def applied_count() -> int:
            return int(client.zcard(f"{PREFIX}:applied"))

    else:
        path = tmp_path / "state.db"
        store_env = {"FRAUD_FEATURE_STORE_PATH": str(path)}

        def applied_count() -> int:
            return sqlite_applied(path)

    # A scorer waiting for the writer may fall behind it; with a grace of a day it may then read trimmed state
    # (counted, not exact), so those runs keep everything.
    grace = LONG_GRACE if kind in ("redis", "sqlite-applier") else GRACE
    env = {
        **store_env,
        "FRAUD_FEATURE_STORE_GRACE_SECONDS": str(grace),
        "FRAUD_BATCH_SIZE": "50",
        "FRAUD_LABELS_TOPIC": labels_topic,
        # Labels only before each batch, never while idle: the replay then shows they are there in time.
        "FRAUD_LABELS_IDLE_SECONDS": "3600",
    }
    log = tmp_path / "scorer.log"
    half = next(k for k, item in enumerate(plan) if item[0] == topics["input_topic"] and k > len(plan) // 2)

    first_half = sum(item[0] == topics["input_topic"] for item in plan[:half])
    waiting: ScorerProcess | None = None
    writer_env, writer_group, first_look = env, topics["group_id"], 300
    if separate:
        # The applier scores nothing: in smaller batches, and looked at from its first, it is caught between a
        # batch's store step and its commit before it has applied the half.
        writer_env = {**env, "FRAUD_ROLE": "applier", "FRAUD_BATCH_SIZE": "20"}
        writer_group, first_look = f"{topics['group_id']}-applier", 1
    produce(broker, plan[:half])
    scorer = ScorerProcess(broker, str(model.directory), log, topics, **writer_env)
    applied_at_kill = committed_at_kill = 0
    try:
        if separate or kind == "redis":  # the scorer that only reads opens the file once the writer made it
            scorer.wait_until(lambda: applied_count() > 0, timeout=120, what="the writer's first batch")
            read_env = {**env, "FRAUD_APPLY_TRANSACTIONS": "false", "FRAUD_WAIT_FOR_WRITER": "true"}
            log_path = tmp_path / "waiting.log"
            waiting = ScorerProcess(broker, str(model.directory), log_path, waiting_topics, **read_env)
            request.addfinalizer(waiting.stop)
        scorer.wait_until(lambda: applied_count() >= first_look, timeout=120, what=f"{first_look} applied")
        # The applier commits right after its store step: a narrower window, so it runs a shorter while between looks.
        looks, pause = (2000, 0.0005) if separate else (400, 0.003)
        for look in range(looks):  # freeze the writer; kill it if a batch is applied but not committed
            os.kill(scorer.process.pid, signal.SIGSTOP)
            applied = applied_count()
            done = committed(broker, writer_group, topics["input_topic"])
            if applied > done or look == looks - 1:
                scorer.kill()
                break
            os.kill(scorer.process.pid, signal.SIGCONT)
            time.sleep(pause * (look % 7))
    finally:
        if scorer.process.poll() is None:
            os.kill(scorer.process.pid, signal.SIGCONT)
        scorer.stop()
    time.sleep(0.5)  # a commit sent before the freeze lands
    applied_at_kill = applied_count()
    committed_at_kill = committed(broker, writer_group, topics["input_topic"])
    assert scorer.process.returncode == -9
    assert applied_at_kill > committed_at_kill, "the kill did not land between a batch's applies and its commit"
    assert committed_at_kill < first_half, "the kill came after the first half was done"

    # A bad transaction and a bad label go to the dead-letter topic with their reason.
    bad_row = {k: v for k, v in model.source_row(0).items() if k != "amount"}
    bad = [
        (topics["input_topic"], b"bad", orjson.dumps(bad_row)),
        (labels_topic, b"bad", orjson.dumps({"tx_id": "x", "label": 2, "label_time": 1.0})),
    ]
    restarted = ScorerProcess(broker, str(model.directory), log, topics, **writer_env)
    try:
        produce(broker, plan[half:] + bad)
        for group in dict.fromkeys([writer_group, topics["group_id"], waiting_topics["group_id"]]):
            restarted.wait_until(
                lambda group=group: committed(broker, group, topics["input_topic"]) >= n + 1,
                timeout=300,
                what=f"every transaction committed by {group}",
            )
    finally:
        restarted.stop()
        if waiting is not None:
            waiting.stop()
    if waiting is not None:
        assert waiting.process.returncode == 0, "the scorer waiting for the applier failed"

    results: dict[str, set[float]] = {}
    read = read_topic(broker.config(), topics["output_topic"], n, timeout=60, distinct_keys=True)
    for key, value, _ in read:
        result = orjson.loads(value)
        results.setdefault(key.decode(), set()).add(result["fraud_probability"])
    ids = model.raw["tx_id"].astype(str).tolist()
    assert set(results) == set(ids)
    worst = 0.0
    for tx_id, expected in zip(ids, model.proba.tolist(), strict=True):
        worst = max(worst, *(abs(p - expected) for p in results[tx_id]))
    assert worst <= 1e-9, f"a streamed probability differs from the offline one by {worst}"
    if kind == "redis":
        shadowed = read_topic(broker.config(), waiting_topics["output_topic"], n, timeout=60, distinct_keys=True)
        found = {key.decode(): orjson.loads(value)["fraud_probability"] for key, value, _ in shadowed}
        assert set(found) == set(ids)
        apart = max(abs(found[tx_id] - p) for tx_id, p in zip(ids, model.proba.tolist(), strict=True))
        assert apart <= 1e-9, f"the scorer waiting for the writer differs from offline by {apart}"
    # The transactions applied before the kill but not committed were read again after their own apply: their
    # results (checked above) come from state that already held them.
    scored_again = len(read) - n

    # Each transaction applied once: the store holds every transaction inside its retention, once.
    retained = _retained(model, grace)
    assert applied_count() == int((times >= times.max() - retained).sum())
    frame = model.raw.assign(card=model.raw["customer_id"].astype(str))
    if kind == "redis":
        # An entity's own events are trimmed when it is next applied to: a card keeps those within the retention of
        # its last one.
        last = frame.groupby("card")["tx_time"].transform("max")
        expected = frame[frame["tx_time"] >= last - retained]["card"].value_counts()
        held = {card: int(client.zcard(f"{PREFIX}:e:card:{card}")) for card in expected.index}
    else:
        # A reader sees every event within the retention of the store's "now", each once.
        from fraud_detection.features.store import SQLiteStateStore

        expected = frame[frame["tx_time"] >= times.max() - retained]["card"].value_counts()
        reader = SQLiteStateStore(path, horizon=retained - grace, grace=grace, readonly=True)
        states = {card: reader.read({"card": card})["card"] for card in expected.index}
        reader.close()
        assert all(len(set(state.tx_id)) == len(state) for state in states.values())
        held = {card: len(state) for card, state in states.items()}
    assert held == expected.to_dict()

    dead = read_topic(broker.config(), topics["dead_letter_topic"], 2, timeout=30)
    classes = sorted(dict(headers)[messages.CLASS_HEADER].decode() for _, _, headers in dead)
    assert classes == sorted([messages.NOT_A_TRANSACTION, messages.NOT_A_LABEL])
    reasons = " ".join(dict(headers)[messages.REASON_HEADER].decode() for _, _, headers in dead)
    assert "missing column(s) ['amount']" in reasons and "label: expected 0 or 1" in reasons
    print(
        f"{n:,} transactions, {len(plan) - n:,} labels; killed with {applied_at_kill - committed_at_kill} applied "
        f"but not committed ({scored_again} results delivered twice); largest difference from offline {worst:.2e}"
    )
    if kind == "redis":
        read_only_agrees(
            broker, model, redis_url, [item for item in plan if item[0] == topics["input_topic"]], tmp_path
        )


def read_only_agrees(broker: Broker, model: TransactionModel, redis_url: str, plan: list[Item], tmp_path: Path) -> None:
    """The same transactions through a scorer that only reads (``FRAUD_APPLY_TRANSACTIONS=false``), over the state
    the replay left: the store is unchanged, no label is read, and every transaction whose windows the retained state
    still covers (within the reader's grace, a day, of the last) gets the offline probability; the others are counted
    as stale."""
    from fraud_detection.features.redis_store import RedisStateStore
    from tests.features.test_apply_many import dump

    topics = topics_for("rawread")
    broker.create_topics(topics["input_topic"], "rawread-labels", partitions=1)
    broker.create_topics(topics["output_topic"], topics["dead_letter_topic"])
    produce(broker, [("rawread-labels", b"x", orjson.dumps({"tx_id": "x", "label": 1, "label_time": 1.0}))])
    store = RedisStateStore(redis_url, horizon=_retained(model) - GRACE)
    held = dump(store)
    env = {
        "FRAUD_FEATURE_STORE_URL": redis_url,
        "FRAUD_APPLY_TRANSACTIONS": "false",
        "FRAUD_LABELS_TOPIC": "rawread-labels",
    }
    scorer = ScorerProcess(broker, str(model.directory), tmp_path / "read-only.log", topics, **env)
    try:
        produce(broker, [(topics["input_topic"], key, value) for _, key, value in plan])
        scorer.wait_scored(len(plan), timeout=120)
        stale = scorer.metric("fraud_stream_stale_features_total")
    finally:
        scorer.stop()
    assert dump(store) == held, "a scorer that only reads changed the store"
    store.close()
    assert committed(broker, f"{topics['group_id']}-labels", "rawread-labels") == 0, "it read the labels topic"
    results = {
        key.decode(): orjson.loads(value)["fraud_probability"]
        for key, value, _ in read_topic(broker.config(), topics["output_topic"], len(plan), timeout=60)
    }
    times = model.raw["tx_time"].to_numpy()
    covered = times >= times.max() - GRACE  # the reader's grace (the default), shorter than the writer's
    assert stale == (~covered).sum(), "the transactions read beyond the grace are counted as stale"
    ids = model.raw["tx_id"].astype(str).to_numpy()
    worst = max(abs(results[tx_id] - p) for tx_id, p in zip(ids[covered], model.proba[covered], strict=True))
    assert covered.sum() > 100 and worst <= 1e-9, (int(covered.sum()), worst)


def test_a_store_that_cannot_be_reached_keeps_the_scorer_unloaded_with_the_reason_and_the_metric(
    broker: Broker, model: TransactionModel, tmp_path: Path
) -> None:
    from tests.conftest import free_port

    topics = topics_for("nostore")
    url = f"redis://127.0.0.1:{free_port()}/0"
    scorer = ScorerProcess(broker, str(model.directory), tmp_path / "scorer.log", topics, FRAUD_FEATURE_STORE_URL=url)
    try:
        scorer.wait_until(lambda: "cannot be reached" in scorer.logs(), timeout=60, what="the store's reason")
        assert scorer.process.poll() is None, "the scorer must keep retrying, not exit"
        assert scorer.metric("fraud_feature_store_errors_total", operation="probe") >= 1
        assert scorer.metric("fraud_feature_store_up") == 0
    finally:
        scorer.stop()


def _retained(model: TransactionModel, grace: float = GRACE) -> float:
    from fraud_detection.modeldir import read_metadata

    metadata: Any = read_metadata(model.directory)
    return float(metadata.transactions.features.horizon) + grace
