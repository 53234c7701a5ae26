"""The stream scorer against a real broker (Tansu on 127.0.0.1): results, dead letters, kill -9, champion reload."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest

from fraud_detection import synth
from fraud_detection.schema import FEATURES
from streaming import messages
from tests.serving.conftest import MODEL_VERSION, REPO, make_model_dir
from tests.streaming.broker import Broker, read_topic
from tests.streaming.conftest import ScorerProcess, topics_for

pytestmark = pytest.mark.slow

SEED = 7
TRACEPARENT = "00-4bf92f3577b34da6a3ce929d0e0e4736-00f067aa0ba902b7-01"

BAD_MESSAGES: list[tuple[str, bytes | None, bytes | None, str, str]] = [
    # (name, key, value, class, words the reason must contain)
    ("not-json", b"bad-1", b'{"V1": 0.1, ', messages.NOT_JSON, "not valid JSON"),
    ("empty", b"bad-2", b"", messages.NOT_JSON, "empty"),
    ("a-list", b"bad-3", b"[1, 2, 3]", messages.NOT_A_TRANSACTION, "JSON object of the 29 features, got a list"),
    ("missing-feature", b"bad-4", None, messages.NOT_A_TRANSACTION, "missing features ['V3']"),
    ("text-value", b"bad-5", None, messages.NOT_A_TRANSACTION, "V7: expected a number"),
    ("negative-amount", b"bad-6", None, messages.NOT_A_TRANSACTION, "Amount must be >= 0"),
    ("unknown-field", b"bad-7", None, messages.NOT_A_TRANSACTION, "unknown features 'amount'"),
    ("no-id", None, None, messages.NO_TRANSACTION_ID, "no transaction id"),
]


def _rows(n: int) -> list[dict[str, float]]:
    frame = synth.generate(synth.SyntheticConfig(n_rows=n, seed=SEED))
    return [dict(zip(FEATURES, map(float, values), strict=True)) for values in frame[list(FEATURES)].to_numpy()]


def _bad_values(row: dict[str, float]) -> dict[str, bytes]:
    missing = {k: v for k, v in row.items() if k != "V3"}
    text = {**row, "V7": "high"}
    negative = {**row, "Amount": -5.0}
    unknown = {**{k: v for k, v in row.items() if k != "Amount"}, "amount": 3.0}
    return {
        "missing-feature": orjson.dumps(missing),
        "text-value": orjson.dumps(text),
        "negative-amount": orjson.dumps(negative),
        "unknown-field": orjson.dumps(unknown),
        "no-id": orjson.dumps(row),
    }


def _fraud(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], cwd=REPO, capture_output=True, text=True, timeout=180, check=False
    )


def _produce(broker: Broker, topic: str, items: list[tuple[bytes | None, bytes | None, Any]]) -> None:
    from confluent_kafka import Producer

    producer = Producer(broker.config())
    for key, value, headers in items:
        producer.produce(topic, value, key, headers=headers)
    assert producer.flush(30) == 0


def _results(broker: Broker, topic: str, expected: int, timeout: float = 60.0) -> dict[str, set[bytes]]:
    """Every result value of each transaction id, read until ``expected`` ids (or ``timeout``)."""
    by_id: dict[str, set[bytes]] = {}
    for key, value, _ in read_topic(broker.config(), topic, expected, timeout=timeout, distinct_keys=True):
        by_id.setdefault(key.decode(), set()).add(value)
    return by_id


def test_every_transaction_gets_one_result_and_each_bad_message_class_a_dead_letter(
    broker: Broker, model_dir: Path, tmp_path: Path
) -> None:
    from serving import scoring

    n = 3000
    topics = topics_for("results")
    broker.create_topics(topics["input_topic"], topics["output_topic"], topics["dead_letter_topic"])
    # The data set goes in through the command users run.
    replay = _fraud(
        "stream", "--bootstrap-servers", broker.bootstrap, "--input-topic", topics["input_topic"],
        "produce", "--rows", str(n), "--seed", str(SEED), "--prefix", "tx",
    )  # fmt: skip
    assert replay.returncode == 0, replay.stderr
    assert f"sent {n:,} transactions" in replay.stdout
    rows = _rows(n)
    bad = _bad_values(rows[0])
    traced = [(b"traced-1", orjson.dumps(rows[1]), [("traceparent", TRACEPARENT.encode())])]
    _produce(
        broker,
        topics["input_topic"],
        traced + [(key, value if value is not None else bad[name], None) for name, key, value, _, _ in BAD_MESSAGES],
    )

    scorer = ScorerProcess(broker, str(model_dir), tmp_path / "scorer.log", topics)
    try:
        scorer.wait_scored(n + 1 + len(BAD_MESSAGES))
        results = _results(broker, topics["output_topic"], n + 1)
        dead = read_topic(broker.config(), topics["dead_letter_topic"], len(BAD_MESSAGES))
        assert scorer.metric("fraud_predictions_total", model_version=MODEL_VERSION) == n + 1
        assert scorer.metric("fraud_model_ready") == 1
        assert scorer.metric("fraud_stream_dead_letters_total") == len(BAD_MESSAGES)
        records = scorer.log_records()
    finally:
        scorer.stop()

    # One result per transaction, keyed by its id, scored exactly as the server's code scores it.
    assert set(results) == {f"tx-{i}" for i in range(n)} | {"traced-1"}
    assert all(len(values) == 1 for values in results.values())
    loaded = scoring.load_model(str(model_dir), 1, "reference")
    expected = scoring.predict_proba(loaded.model, np.asarray([[r[f] for f in FEATURES] for r in rows], np.float32))
    for i in (0, 1, 17, n - 1):
        result = orjson.loads(next(iter(results[f"tx-{i}"])))
        assert result["transaction_id"] == f"tx-{i}"
        assert result["model_version"] == MODEL_VERSION
        assert result["fraud_probability"] == pytest.approx(float(expected[i]), abs=1e-7)
        assert result["is_fraud"] == (result["fraud_probability"] >= loaded.metadata.threshold)
    flagged = sum(orjson.loads(next(iter(v)))["is_fraud"] for v in results.values())
    assert 0 < flagged < n
    # The caller's trace context is passed on.
    assert orjson.loads(next(iter(results["traced-1"])))["traceparent"] == TRACEPARENT

    # A dead letter for each bad message: the original bytes, its class and a reason that names the problem.
    assert len(dead) == len(BAD_MESSAGES)
    by_reason = {headers[messages.REASON_HEADER].decode(): (key, value, headers) for key, value, headers in dead}
    for name, key, value, kind, words in BAD_MESSAGES:
        match = [r for r in by_reason if words in r]
        assert match, f"{name}: no dead letter whose reason says {words!r}: {list(by_reason)}"
        got_key, got_value, headers = by_reason[match[0]]
        assert headers[messages.CLASS_HEADER].decode() == kind, name
        assert got_key == key, name
        assert (got_value or b"") == (value if value is not None else bad[name]), name
        assert headers[messages.SOURCE_HEADER].decode().startswith(topics["input_topic"] + "/")
    assert {kind for *_, kind, _ in BAD_MESSAGES} == set(messages.REJECT_CLASSES) - {messages.NOT_A_LABEL}

    # The server's structured logs: a record per batch, a warning per dead letter.
    batches = [r for r in records if r.get("event") == "stream_batch"]
    assert sum(r["scored"] for r in batches) == n + 1
    assert sum(r["dead_letters"] for r in batches) == len(BAD_MESSAGES)
    assert any(r.get("severity") == "WARNING" and "dead letter" in r.get("message", "") for r in records)


class _Ledger:
    """The broker's side of the scorer's work: results on the output topic, inputs committed by the group.

    Results are counted by reading them: Tansu's high watermarks lag behind what a reader receives, so they
    cannot be compared with committed offsets. Neither client joins the scorer's group.
    """

    def __init__(self, broker: Broker, topics: dict[str, str]) -> None:
        from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

        self.topics = topics
        self.groups = Consumer(broker.config(**{"group.id": topics["group_id"], "enable.auto.commit": False}))
        self.output = Consumer(
            broker.config(**{"group.id": "ledger", "enable.auto.commit": False, "fetch.wait.max.ms": 10})
        )
        topic = topics["output_topic"]
        partitions = self.output.list_topics(topic, timeout=10).topics[topic].partitions
        self.output.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
        self.read = 0

    def committed(self) -> int:
        """Input messages committed by the scorer's group (the sum of its committed offsets)."""
        from confluent_kafka import TopicPartition

        topic = self.topics["input_topic"]
        partitions = self.groups.list_topics(topic, timeout=10).topics[topic].partitions
        offsets = self.groups.committed([TopicPartition(topic, p) for p in partitions], timeout=10)
        return sum(max(tp.offset, 0) for tp in offsets)

    def results(self, quiet: float = 0.1) -> int:
        """Messages read from the output topic so far: reads until nothing new arrives for ``quiet`` seconds."""
        for _ in range(1000):  # bounded: at most 10 million messages
            batch = self.output.consume(10_000, quiet)
            if not batch:
                break
            self.read += sum(message.error() is None for message in batch)
        return self.read

    def close(self) -> None:
        self.groups.close()
        self.output.close()


def test_kill_9_mid_batch_then_restart_every_input_has_one_consistent_result(
    broker: Broker, model_dir: Path, tmp_path: Path
) -> None:
    """kill -9 lands where results of a batch are on the broker and its inputs are not committed.

    The scorer is frozen (SIGSTOP) at moments spread over its work, and the broker is read while it cannot move:
    more results than committed inputs means a batch is between delivery and commit, and the frozen scorer is
    killed there. Otherwise it runs on (SIGCONT) to the next look. A commit already on the wire when the scorer
    froze can still land after the look, so the state is read again once the process is dead, and another scorer
    takes over if the kill turned out to be between batches.
    """
    chunk = 20_000
    topics = topics_for("kill")
    broker.create_topics(topics["input_topic"], topics["output_topic"], topics["dead_letter_topic"])
    log = tmp_path / "scorer.log"
    settings = {"FRAUD_BATCH_SIZE": "500"}
    produced: set[str] = set()
    ledger = _Ledger(broker, topics)
    mid_batch, looks = 0, 0
    try:
        for attempt in range(5):
            replay = _fraud(
                "stream", "--bootstrap-servers", broker.bootstrap, "--input-topic", topics["input_topic"],
                "produce", "--rows", str(chunk), "--seed", str(SEED), "--prefix", f"k{attempt}",
            )  # fmt: skip
            assert replay.returncode == 0, replay.stderr
            produced |= {f"k{attempt}-{i}" for i in range(chunk)}
            n = len(produced)
            scorer = ScorerProcess(broker, str(model_dir), log, topics, **settings)
            try:
                scorer.wait_scored(1000, timeout=120)
                pid = scorer.process.pid
                for look in range(400):
                    os.kill(pid, signal.SIGSTOP)
                    looks += 1
                    on_broker, committed = ledger.results(), ledger.committed()
                    if on_broker > committed:
                        scorer.kill()  # SIGKILL ends a stopped process
                        break
                    os.kill(pid, signal.SIGCONT)
                    if committed >= n:
                        break  # ran dry: more inputs for the next scorer
                    time.sleep(0.002 * (look % 11))  # spread the looks over the batch's phases
            finally:
                if scorer.process.poll() is None:
                    os.kill(scorer.process.pid, signal.SIGCONT)
                scorer.stop()  # a scorer not killed finishes and commits its batch
            if scorer.process.returncode == -9:
                time.sleep(0.5)  # requests the scorer sent before it froze reach the broker
                mid_batch = ledger.results() - ledger.committed()
                if mid_batch > 0:
                    break
        assert mid_batch > 0, f"no kill landed between a batch's delivery and its commit in {looks} looks"
        last = ScorerProcess(broker, str(model_dir), log, topics, **settings)
        try:
            last.wait_until(lambda: ledger.committed() >= n, timeout=300, what="every input committed")
        finally:
            last.stop()
    finally:
        ledger.close()
    results = _results(broker, topics["output_topic"], n)
    assert set(results) == produced, "an input has no result"
    different = {key: values for key, values in results.items() if len(values) > 1}
    assert not different, f"inputs with two different results: {list(different)[:5]}"
    delivered = len(read_topic(broker.config(), topics["output_topic"], n + 10_000, timeout=10))
    print(
        f"killed after {looks} looks with {mid_batch} results delivered but not committed; {n:,} inputs, "
        f"{delivered:,} results: {delivered - n:,} scored again after the kill, all identical"
    )
    assert delivered - n >= mid_batch  # the uncommitted batch was scored again


def test_reloads_when_the_champion_moves(broker: Broker, tmp_path: Path) -> None:
    from fraud_detection import champion
    from fraud_detection.modeldir import METADATA_FILE, publish, read_metadata

    root = tmp_path / "serving"

    def promote(directory: Path, version: str) -> None:
        """As promotion does: export the version, then move the champion pointer (and its link) to it."""
        uri = publish(directory, str(root), version)
        champion.compare_and_set(str(root), champion.read(str(root)), champion.Champion(version, uri))

    first = make_model_dir(tmp_path / "candidate-7")
    promote(first, "7")
    topics = topics_for("reload")
    broker.create_topics(topics["input_topic"], topics["output_topic"], topics["dead_letter_topic"])
    rows = _rows(200)
    scorer = ScorerProcess(
        broker, str(root / "champion"), tmp_path / "scorer.log", topics, FRAUD_RELOAD_CHECK_SECONDS="0.5"
    )
    try:
        _produce(
            broker, topics["input_topic"], [(f"a-{i}".encode(), orjson.dumps(r), None) for i, r in enumerate(rows)]
        )
        scorer.wait_scored(len(rows))
        # Promotion publishes version 8 and moves the champion pointer and link.
        second = make_model_dir(tmp_path / "candidate-8", seed=5)
        metadata = read_metadata(second).model_copy(update={"model_version": "8"})
        (second / METADATA_FILE).write_text(metadata.model_dump_json(indent=2))
        promote(second, "8")
        scorer.wait_until(lambda: scorer.metric("fraud_model_info", model_version="8") == 1, what="the reload")
        assert scorer.metric("fraud_model_info", model_version="7") == 0
        _produce(
            broker, topics["input_topic"], [(f"b-{i}".encode(), orjson.dumps(r), None) for i, r in enumerate(rows)]
        )
        scorer.wait_scored(2 * len(rows))
    finally:
        scorer.stop()
    results = {k.decode(): orjson.loads(v) for k, v, _ in read_topic(broker.config(), topics["output_topic"], 400)}
    assert {r["model_version"] for k, r in results.items() if k.startswith("a-")} == {"7"}
    assert {r["model_version"] for k, r in results.items() if k.startswith("b-")} == {"8"}
