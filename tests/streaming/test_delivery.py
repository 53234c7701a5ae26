"""Batches in flight against a real broker (Tansu on 127.0.0.1): :class:`streaming.delivery.Deliveries` frees a
batch's input offsets only once it and every batch before it are acknowledged, and stops at a failed or late one.
"""

from __future__ import annotations

import time
from collections.abc import Iterator
from typing import Any

import pytest

from streaming.delivery import Deliveries, DeliveryError
from tests.streaming.broker import Broker


@pytest.fixture
def producer(broker: Broker) -> Iterator[Any]:
    """A producer of the scorer's kind (every delivery reported), and a fresh topic ``delivery-out`` of 3 partitions."""
    from confluent_kafka import Producer

    if "delivery-out" not in Producer(broker.config()).list_topics(timeout=10).topics:
        broker.create_topics("delivery-out")
    made = Producer(broker.config(acks="all", **{"linger.ms": 1}))
    yield made
    made.flush(10)


def _send(producer: Any, report: Any, count: int) -> None:
    for i in range(count):
        producer.produce("delivery-out", b"{}", f"d-{i}".encode(), on_delivery=report)


def test_a_batch_is_freed_only_after_every_earlier_batch(broker: Broker, producer: Any) -> None:
    deliveries = Deliveries("in", timeout=30)
    first = deliveries.start({0: 9, 1: 4})
    _send(producer, first.report, 3)  # not sealed yet: more of it could still come
    second = deliveries.start({0: 12, 2: 7})
    _send(producer, second.report, 5)
    second.seal(5)
    assert producer.flush(10) == 0
    assert second.done and not first.done
    assert deliveries.settle() == {}, "a later batch was freed before an earlier one was acknowledged"
    assert len(deliveries) == 2
    first.seal(3)
    assert deliveries.settle() == {0: 12, 1: 4, 2: 7}  # each partition's last offset, the later batch's first
    assert len(deliveries) == 0


def test_wait_holds_until_at_most_that_many_batches_are_in_flight(broker: Broker, producer: Any) -> None:
    deliveries = Deliveries("in", timeout=30)
    for n in range(4):
        sent = deliveries.start({n % 3: n})
        _send(producer, sent.report, 200)
        sent.seal(200)
    assert deliveries.wait(producer, most=0) == {0: 3, 1: 1, 2: 2}
    assert len(deliveries) == 0


def test_a_failed_result_frees_nothing_and_raises(broker: Broker) -> None:
    from confluent_kafka import Producer

    producer = Producer(broker.config(acks="all"))  # new: it learns the topic has 3 partitions after queueing
    deliveries = Deliveries("in", timeout=30)
    sent = deliveries.start({0: 5})
    producer.produce("delivery-out", b"{}", b"d-1", partition=42, on_delivery=sent.report)  # no such partition
    producer.produce("delivery-out", b"{}", b"d-2", on_delivery=sent.report)
    sent.seal(2)
    with pytest.raises(DeliveryError, match=r"1 result.* failed .*delivery-out.*partition"):
        deliveries.wait(producer, most=0)
    assert deliveries.settle() == {}  # nothing of the batch is freed afterwards either


def test_a_batch_never_acknowledged_raises_after_the_timeout(broker: Broker, producer: Any) -> None:
    deliveries = Deliveries("in", timeout=0.2)
    sent = deliveries.start({0: 5})
    sent.seal(1)  # one result counted that never reports
    started = time.monotonic()
    with pytest.raises(DeliveryError, match=r"not acknowledged after 0\.2s"):
        deliveries.wait(producer, most=0)
    assert time.monotonic() - started < 5


def test_a_batch_cut_short_raises_instead_of_waiting(broker: Broker, producer: Any) -> None:
    deliveries = Deliveries("in", timeout=30)
    deliveries.start({0: 5})  # sending stopped by an error: never sealed
    started = time.monotonic()
    with pytest.raises(DeliveryError, match="not sent in full"):
        deliveries.wait(producer, most=0)
    assert time.monotonic() - started < 1
