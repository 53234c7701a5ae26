"""Adaptive batches and commits against a real broker (Tansu on 127.0.0.1): :func:`streaming.consumer.take`
returns what has arrived without waiting for a batch to fill, and a scorer stopped cleanly leaves every scored
input committed (its commits are sent without waiting, the last one is waited for)."""

from __future__ import annotations

import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest

from streaming.consumer import take
from tests.streaming.broker import Broker
from tests.streaming.conftest import ScorerProcess, topics_for
from tests.streaming.test_stream import _rows

pytestmark = pytest.mark.slow


def _send(broker: Broker, topic: str, values: list[bytes], prefix: str = "m") -> None:
    from confluent_kafka import Producer

    producer = Producer(broker.config(**{"linger.ms": 0}))
    for i, value in enumerate(values):
        producer.produce(topic, value, f"{prefix}-{i}".encode())
    assert producer.flush(30) == 0


@pytest.fixture
def reader(broker: Broker, request: pytest.FixtureRequest) -> Iterator[tuple[Any, str]]:
    """A consumer assigned every partition of a new topic from its beginning, and the topic's name."""
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    topic = f"batching-{request.node.name.split('[')[0].replace('_', '-')}"
    broker.create_topics(topic)
    consumer = Consumer(broker.config(**{"group.id": "batching", "enable.auto.commit": False}))
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in range(3)])
    try:
        yield consumer, topic
    finally:
        consumer.close()


def _take_all(consumer: Any, expected: int, most: int, wait: float, limit: float) -> tuple[list[int], float]:
    """Sizes of the batches ``take`` returns until ``expected`` messages, and the seconds it took."""
    sizes: list[int] = []
    started = time.monotonic()
    while sum(sizes) < expected and time.monotonic() - started < limit:
        batch = take(consumer, most, wait)
        if batch:
            sizes.append(sum(message.error() is None for message in batch))
    return sizes, time.monotonic() - started


def test_a_few_messages_are_taken_at_once_not_after_the_wait(broker: Broker, reader: tuple[Any, str]) -> None:
    consumer, topic = reader
    _send(broker, topic, [b"{}"] * 5)
    # A batch of 2,000 that waited to fill would hold these five for the whole 10 s wait.
    sizes, seconds = _take_all(consumer, 5, most=2000, wait=10.0, limit=30.0)
    assert sum(sizes) == 5
    assert seconds < 3.0, f"five messages took {seconds:.1f}s in batches {sizes}"


def test_a_backlog_is_taken_in_full_batches(broker: Broker, reader: tuple[Any, str]) -> None:
    consumer, topic = reader
    _send(broker, topic, [b"{}"] * 3000)
    time.sleep(1.0)  # the consumer's fetcher queues the backlog
    sizes, _ = _take_all(consumer, 3000, most=500, wait=1.0, limit=30.0)
    assert sum(sizes) == 3000
    assert max(sizes) == 500 and sizes.count(500) >= 3, sizes


def test_nothing_to_take_returns_empty_after_the_wait(reader: tuple[Any, str]) -> None:
    consumer, _ = reader
    started = time.monotonic()
    assert [m for m in take(consumer, 100, 0.3) if m.error() is None] == []
    assert time.monotonic() - started < 3.0


def test_a_clean_stop_leaves_every_scored_input_committed(broker: Broker, model_dir: Path, tmp_path: Path) -> None:
    from confluent_kafka import Consumer, TopicPartition

    topics = topics_for("commits")
    broker.create_topics(topics["input_topic"], topics["output_topic"], topics["dead_letter_topic"])
    values = [orjson.dumps(row) for row in _rows(50)]
    scorer = ScorerProcess(broker, str(model_dir), tmp_path / "scorer.log", topics)
    try:
        for i in range(20):  # a trickle: many small batches, each committed without waiting for the answer
            _send(broker, topics["input_topic"], values, prefix=f"c{i}")
        scorer.wait_scored(1000)
    finally:
        scorer.stop()
    assert scorer.process.returncode == 0
    group = Consumer(broker.config(**{"group.id": topics["group_id"], "enable.auto.commit": False}))
    try:
        offsets = group.committed([TopicPartition(topics["input_topic"], p) for p in range(3)], timeout=10)
    finally:
        group.close()
    assert sum(max(tp.offset, 0) for tp in offsets) == 1000
