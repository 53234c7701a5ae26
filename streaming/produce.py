"""Publish transactions to a topic: what ``fraud stream produce`` and the benchmark use to feed the scorer.

The rows arrive already read (the command line reads the data set with the library); this module only turns
them into messages: key = transaction id, value = the JSON object of the 29 features, optionally at a fixed rate.
"""

from __future__ import annotations

import time
from collections.abc import Iterable, Mapping
from typing import Any

import orjson

from fraud_detection.schema import FEATURES
from streaming import kafka


def encode_transaction(row: Mapping[str, float]) -> bytes:
    """The message value of one transaction: the 29 features as a JSON object."""
    return orjson.dumps({name: float(row[name]) for name in FEATURES})


def produce(
    config: Mapping[str, Any],
    topic: str,
    messages: Iterable[tuple[bytes | None, bytes]],
    rate: float = 0.0,
    flush_timeout: float = 60.0,
) -> int:
    """Publish ``(key, value)`` messages to ``topic``; at most ``rate`` per second when ``rate`` > 0.

    Each message carries its send time as its timestamp (what the scorer measures end-to-end latency from).
    Returns the number sent; raises RuntimeError if the broker did not acknowledge them all.
    """
    from confluent_kafka import Producer

    failures: list[str] = []

    def on_delivery(error: Any, message: Any) -> None:
        if error is not None:
            failures.append(str(error))

    producer = Producer(
        kafka.logged(
            {"linger.ms": 5, "queue.buffering.max.messages": 1_000_000, "delivery.report.only.error": True, **config}
        )
    )
    sent = 0
    started = time.perf_counter()
    for key, value in messages:
        if rate > 0:
            due = started + sent / rate
            pause = due - time.perf_counter()
            if pause > 0:
                producer.poll(0)
                time.sleep(pause)
        while True:
            try:
                producer.produce(topic, value, key, on_delivery=on_delivery)
                break
            except BufferError:
                producer.poll(0.05)
        sent += 1
        if sent % 1000 == 0:
            producer.poll(0)
    remaining = producer.flush(flush_timeout)
    if remaining or failures:
        raise RuntimeError(
            f"{remaining} message(s) not delivered to {topic} within {flush_timeout}s"
            + (f"; {len(failures)} failed, first: {failures[0]}" if failures else "")
        )
    return sent


def create_topics(config: Mapping[str, Any], names: Iterable[str], partitions: int, timeout: float = 30.0) -> list[str]:
    """Create the topics that do not exist yet (``partitions`` each); returns the names created."""
    from confluent_kafka import KafkaError, KafkaException
    from confluent_kafka.admin import AdminClient, NewTopic

    admin = AdminClient(kafka.logged(config))
    futures = admin.create_topics(
        [NewTopic(name, num_partitions=partitions, replication_factor=1) for name in names], request_timeout=timeout
    )
    created = []
    for name, future in futures.items():
        try:
            future.result(timeout)
            created.append(name)
        except KafkaException as error:
            if error.args[0].code() != KafkaError.TOPIC_ALREADY_EXISTS:
                raise
    return created
