"""Batches of results on their way to the broker, and the input offsets their acknowledgement frees for commit.

The scorer does not wait for one batch's results to be acknowledged before it scores the next (waiting held every
message that arrived meanwhile for a broker round trip, the stream's latency tail: docs/streaming.md, "The tail
at 5,000/s"). Each batch sent is a :class:`Sent`: every result and dead letter of it reports its delivery to it,
and :class:`Deliveries` keeps them in the order they were scored. A batch's input offsets are handed back for
commit only once it *and every batch before it* are acknowledged, so a committed offset never runs ahead of a
result that is not on the broker, and delivery stays at-least-once.

Commits are sent without waiting for their answer (:meth:`Deliveries.commit`); a clean stop and a rebalance
taking partitions away first wait for every result, then commit and wait for that (:meth:`Deliveries.commit_all`).
"""

from __future__ import annotations

import logging
import time
from collections import deque
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Producer

log = logging.getLogger(__name__)


class DeliveryError(RuntimeError):
    """The broker did not acknowledge every result of a batch: that batch and the ones after it stay uncommitted."""


class Sent:
    """One batch's results and dead letters awaiting acknowledgement, and its input offsets (partition → last)."""

    __slots__ = ("acked", "ends", "expected", "failures", "since")

    def __init__(self, ends: dict[int, int], failures: list[str]) -> None:
        self.ends = ends
        self.failures = failures
        self.acked = 0
        self.expected = -1  # unknown until :meth:`seal`
        self.since = time.monotonic()

    def report(self, error: Any, message: Any) -> None:
        """A message's delivery report (``on_delivery``): counted; a failure is kept for :class:`Deliveries`."""
        if error is not None:
            self.failures.append(f"{message.topic()}: {error}")
        self.acked += 1

    def seal(self, count: int) -> None:
        """Every message of the batch is queued: ``count`` of them."""
        self.expected = count
        self.since = time.monotonic()

    @property
    def done(self) -> bool:
        """Sealed and every message reported."""
        return self.acked == self.expected


class Deliveries:
    """The batches sent and not yet acknowledged, oldest first (module doc)."""

    def __init__(self, topic: str, timeout: float) -> None:
        self.topic = topic
        self.timeout = timeout
        self.failures: list[str] = []
        self.acknowledged: dict[int, int] = {}
        """The last input offset of each partition whose results (and all before) are acknowledged."""
        self._sent: deque[Sent] = deque()

    def __len__(self) -> int:
        return len(self._sent)

    def start(self, ends: dict[int, int]) -> Sent:
        """A new batch, after every batch started before it; its messages report to it, then :meth:`Sent.seal`."""
        sent = Sent(ends, self.failures)
        self._sent.append(sent)
        return sent

    def settle(self) -> dict[int, int]:
        """The input offsets freed since the last call: those of the acknowledged batches at the front.

        Raises:
            DeliveryError: a message failed, or the oldest batch waited more than ``timeout`` seconds.
        """
        if self.failures:
            failures, self.failures[:] = list(self.failures), []
            self._sent.clear()
            raise DeliveryError(
                f"{len(failures)} result(s) or dead letter(s) failed (first: {failures[0]}): "
                "their batch and the ones after it are not committed and will be scored again"
            )
        freed: dict[int, int] = {}
        while self._sent and self._sent[0].done:
            freed.update(self._sent.popleft().ends)  # later batches hold later offsets of a partition
        if self._sent and time.monotonic() - self._sent[0].since > self.timeout:
            oldest = self._sent[0]
            self._sent.clear()
            raise DeliveryError(
                f"{oldest.expected - oldest.acked} result(s) not acknowledged after {self.timeout}s: the batch and "
                "the ones after it are not committed and will be scored again"
            )
        return freed

    def wait(self, producer: Producer, most: int) -> dict[int, int]:
        """Serve delivery reports until at most ``most`` batches await acknowledgement; the offsets freed.

        Raises:
            DeliveryError: as :meth:`settle`.
        """
        freed = self.settle()
        while len(self._sent) > most:
            if self._sent[0].expected < 0:  # its sending was cut short by an error: it never completes
                self._sent.clear()
                raise DeliveryError("a batch was not sent in full: it and the ones after it are not committed")
            if most == 0:
                producer.flush(min(self.timeout, 1.0))
            else:
                producer.poll(0.005)
            freed.update(self.settle())
        return freed

    def commit(self, consumer: Consumer, producer: Producer, most: int | None = None) -> None:
        """Serve the delivery reports that arrived and commit the input offsets freed by the batches acknowledged so
        far, without waiting for the answer; first wait until at most ``most`` batches await acknowledgement (None:
        no wait).

        Raises:
            DeliveryError: as :meth:`settle`.
        """
        from confluent_kafka import TopicPartition

        if most is None:
            producer.poll(0)
            freed = self.settle()
        else:
            freed = self.wait(producer, most)
        if freed:
            offsets = [TopicPartition(self.topic, p, o + 1) for p, o in freed.items()]
            consumer.commit(offsets=offsets, asynchronous=True)
            self.acknowledged.update(freed)

    def commit_all(self, consumer: Consumer, producer: Producer) -> None:
        """Wait for every result sent, then commit every partition still assigned and wait for the answer (a failed
        commit is logged: its batches were delivered, at worst they are scored again).

        Raises:
            DeliveryError: as :meth:`settle`.
        """
        from confluent_kafka import KafkaException, TopicPartition

        self.commit(consumer, producer, most=0)
        owned = {tp.partition for tp in consumer.assignment() if tp.topic == self.topic}
        offsets = [TopicPartition(self.topic, p, o + 1) for p, o in self.acknowledged.items() if p in owned]
        if offsets:
            try:
                consumer.commit(offsets=offsets, asynchronous=False)
            except KafkaException as error:
                log.warning("last commit failed: %s", error)


def on_commit(error: Any, partitions: list[Any]) -> None:
    """A commit's answer (the consumer's ``on_commit``): a failure is logged (the batches it covered are scored
    again after a restart)."""
    if error is not None:
        log.warning("commit failed: %s", error)
