"""The stream scorer's prediction log on real parts: a Tansu broker and ``python -m streaming`` processes.

N transactions scored by the stream give N records on the log's topic, matched by id, each what was scored and
answered; with the log's broker unreachable the scorer still delivers every result, and the dropped counter on
its ``/metrics`` is exactly N."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import orjson
import pytest

from fraud_detection import synth
from fraud_detection.monitoring import records
from fraud_detection.schema import FEATURES
from serving.log_records import Scored, Source, messages
from streaming.prediction_log import COMPONENT, StreamLog, trace_id
from streaming.settings import StreamSettings
from tests.conftest import free_port
from tests.serving.conftest import MODEL_VERSION
from tests.streaming.broker import Broker, read_topic
from tests.streaming.conftest import ScorerProcess, topics_for

N = 1500
TRACE = "4bf92f3577b34da6a3ce929d0e0e4736"
TRACED = {3, 700}
"""Positions of the transactions sent with a ``traceparent`` header."""


def _send(broker: Broker, topic: str, n: int) -> list[dict[str, float]]:
    """``n`` synthetic transactions keyed ``tx-<i>`` (a few traced); the rows sent."""
    from confluent_kafka import Producer

    frame = synth.generate(synth.SyntheticConfig(n_rows=n, seed=11))
    rows = [dict(zip(FEATURES, map(float, values), strict=True)) for values in frame[list(FEATURES)].to_numpy()]
    producer = Producer(broker.config())
    for i, row in enumerate(rows):
        headers: list[tuple[str, str | bytes | None]] | None = (
            [("traceparent", f"00-{TRACE}-00f067aa0ba902b7-01".encode())] if i in TRACED else None
        )
        producer.produce(topic, orjson.dumps(row), f"tx-{i}".encode(), headers=headers)
    assert producer.flush(30) == 0
    return rows


def _topic_names(topics: dict[str, str]) -> list[str]:
    return [name for key, name in topics.items() if key != "group_id"]


def _dropped(scorer: ScorerProcess) -> float:
    return scorer.metric("fraud_prediction_log_dropped_total")


@pytest.mark.parametrize(
    ("traceparent", "expected"),
    [
        (f"00-{TRACE}-00f067aa0ba902b7-01", TRACE),
        (f"00-{TRACE.upper()}-00f067aa0ba902b7-00", TRACE),
        (None, ""),
        ("", ""),
        ("00-" + "0" * 32 + "-00f067aa0ba902b7-01", ""),  # the invalid all-zero id
        (f"00-{TRACE[:-1]}x-00f067aa0ba902b7-01", ""),
        (f"00-{TRACE}-01", ""),
    ],
)
def test_the_trace_id_comes_from_a_valid_traceparent(traceparent: str | None, expected: str) -> None:
    assert trace_id(traceparent) == expected


def test_per_row_trace_ids_are_encoded_as_records_encode_does() -> None:
    x = np.arange(2 * len(FEATURES), dtype=np.float32).reshape(2, len(FEATURES)) / 100
    proba = np.asarray([0.25, 0.75], dtype=np.float32)
    scored = Scored("default", "3", FEATURES, x, proba, proba >= 0.5, ["a", "b"], 0, 1_780_000_000_000_000, [TRACE, ""])
    where = Source("fraud-champion", "fraud", COMPONENT)
    for i, (key, value, headers) in enumerate(messages(scored, where)):
        item = records.decode(key, value, headers)
        assert (item.id, item.component, item.source) == (
            ["a", "b"][i],
            COMPONENT,
            "/fraud/fraud-champion/stream-scorer",
        )
        assert item.data.trace_id == [TRACE, ""][i]
        assert records.encode(item) == (key, value, headers)


def test_the_log_is_off_without_brokers() -> None:
    off = StreamLog(StreamSettings(prediction_log_bootstrap_servers=""))
    assert off.log is None
    off.close()  # nothing started, nothing to do


@pytest.mark.slow
def test_every_scored_transaction_gives_one_record_matched_by_id(
    broker: Broker, model_dir: Path, tmp_path: Path
) -> None:
    topics = topics_for("plog")
    log_topic = "plog-predictions"
    broker.create_topics(*_topic_names(topics), log_topic)
    rows = _send(broker, topics["input_topic"], N)
    scorer = ScorerProcess(
        broker,
        str(model_dir),
        tmp_path / "scorer.log",
        topics,
        FRAUD_PREDICTION_LOG_BOOTSTRAP_SERVERS=broker.bootstrap,
        FRAUD_PREDICTION_LOG_TOPIC=log_topic,
        FRAUD_NAMESPACE="fraud",
    )
    try:
        scorer.wait_scored(N)
        logged = read_topic(broker.config(), log_topic, N)
        results = read_topic(broker.config(), topics["output_topic"], N)
        scorer.wait_until(
            lambda: scorer.metric("fraud_prediction_log_sent_total") >= N, timeout=30, what="records acknowledged"
        )
        sent, dropped = scorer.metric("fraud_prediction_log_sent_total"), _dropped(scorer)
    finally:
        scorer.stop()

    decoded = {item.id: item for item in (records.decode(k, v, list(h.items())) for k, v, h in logged)}
    assert len(logged) == N and sorted(decoded) == sorted(f"tx-{i}" for i in range(N))
    assert (sent, dropped) == (N, 0)
    answered = {orjson.loads(v)["transaction_id"]: orjson.loads(v) for _, v, _ in results}
    for i in range(N):
        item = decoded[f"tx-{i}"]
        result = answered[f"tx-{i}"]
        assert (item.endpoint, item.component, item.namespace) == ("default", "stream-scorer", "fraud")
        assert item.inferenceservicename == "fraud-detector"
        assert item.data.model_version == MODEL_VERSION
        # The features as scored (float32), the probability and the decision the result carried.
        assert item.data.features == pytest.approx({k: float(np.float32(v)) for k, v in rows[i].items()})
        assert item.data.probability == pytest.approx(result["fraud_probability"], abs=1e-7)
        assert item.data.decision == result["is_fraud"]
        assert item.data.trace_id == (TRACE if i in TRACED else "")


@pytest.mark.slow
def test_with_the_log_broker_unreachable_scoring_carries_on_and_every_record_is_counted_dropped(
    broker: Broker, model_dir: Path, tmp_path: Path
) -> None:
    topics = topics_for("plog-down")
    broker.create_topics(*_topic_names(topics))
    _send(broker, topics["input_topic"], N)
    scorer = ScorerProcess(
        broker,
        str(model_dir),
        tmp_path / "scorer.log",
        topics,
        FRAUD_PREDICTION_LOG_BOOTSTRAP_SERVERS=f"127.0.0.1:{free_port()}",
        FRAUD_PREDICTION_LOG_TIMEOUT_SECONDS="2",
        FRAUD_PREDICTION_LOG_QUEUE_ROWS="400",  # a batch larger than this is dropped whole (queue_full)
    )
    try:
        scorer.wait_scored(N, timeout=60)
        results = read_topic(broker.config(), topics["output_topic"], N, timeout=30, distinct_keys=True)
        scorer.wait_until(lambda: _dropped(scorer) >= N, timeout=30, what=f"{N} records dropped")
        dropped, sent = _dropped(scorer), scorer.metric("fraud_prediction_log_sent_total")
        scored = scorer.metric("fraud_stream_messages_total", outcome="scored")
    finally:
        scorer.stop()

    assert len({key for key, _, _ in results}) == N, "every transaction still has its result"
    assert (scored, dropped, sent) == (N, N, 0)
