"""Raw transactions in the stream: messages in the model's mapping, features from the entity-state store, labels.

Used by :class:`streaming.consumer.StreamScorer` when the model directory records ``transactions`` (a model trained
on raw transactions); the public-schema path is untouched.

* **In**: one JSON object per message in the mapping's *source* columns, as a row of the training file (the same
  rows the predictor takes, parsed by :mod:`serving.raw_payload`). The transaction id is the mapping's id column;
  a mapping without one (PaySim) takes an optional ``tx_id`` field, else the message's ``topic/partition/offset``,
  which a redelivery keeps. The message *key* is the entity the topic is partitioned by (the card or customer), so
  one entity's transactions stay in one partition, in order.
* **Order and exactly once**: a batch's transactions are applied to the store in offset order (per partition), and
  each entity of the batch read once, in one store call (``apply_and_read``: one SQLite transaction or one Lua
  script), then the batch's features computed by the offline arithmetic
  (:meth:`serving.state_store.StateLookup.apply_then_compute`). A feature uses only events strictly before the
  transaction's time, so the batch's later transactions in the state change nothing, and earlier ones of the same
  card are counted. The stores apply a transaction id once, so a batch scored again after a kill -9 before its
  commit counts nothing twice and reads the same state: its features are the same. The same store step records how
  far the batch got in each partition (``progress``).
* **Scorers that wait for the writer** (``wait_for_writer``): a scorer that only reads waits, before reading a
  batch's state, until the writer (the scorer that applies, or a ``role=applier`` process that applies and scores
  nothing) has recorded progress past the batch's last offsets, so its features are the writer's.
* **Labels** (:class:`LabelFeed`): ``{"tx_id", "label", "label_time"}`` objects on ``labels_topic``, applied with
  ``store.apply_label``. Before every batch of transactions the feed reads the labels topic up to its end as the
  broker reports it then, so a label the broker acknowledged before a transaction was produced is applied before
  that transaction is scored. Label offsets are committed once applied (and their dead letters delivered); a label
  applied twice changes nothing.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from fraud_detection.features.store import Progress, StoreUnavailable
from fraud_detection.modeldir import TransactionInputs
from serving.payload import PayloadError
from serving.raw_payload import RawSchema, parse_label
from serving.state_store import StateLookup, store_opener
from streaming import messages
from streaming.metrics import stream_metrics
from streaming.settings import StreamSettings

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Message

    from fraud_detection.features.online import Transaction

log = logging.getLogger(__name__)

MISSING_TOPIC_SECONDS = 30.0
"""How often a scorer whose labels topic does not exist looks for it again."""

Rejected = tuple["Message", str, str]
"""A message for the dead-letter topic: the message, its class and the reason."""


class WriterBehind(StoreUnavailable):
    """A scorer that waits for the stream's writer (``wait_for_writer``) did not see it apply a batch in time."""


class RawTransactions:
    """A raw-transaction model's decoding, state lookup and labels feed (the module docstring)."""

    def __init__(self, settings: StreamSettings, inputs: TransactionInputs, consumer_config: dict[str, Any]) -> None:
        self.inputs = inputs
        self.schema = RawSchema.of(inputs)
        # The stream is the store's writer, whatever the predictor's read-only setting says, unless told to only read.
        self.apply = settings.apply_transactions
        self.topic = settings.input_topic
        self.wait_for_writer = settings.wait_for_writer
        self.wait_seconds = settings.writer_wait_seconds
        self.grace = settings.feature_store_grace_seconds
        opener, where = store_opener(settings.model_copy(update={"feature_store_write": self.apply}), inputs)
        self.lookup = StateLookup(inputs, opener, where, write=self.apply)
        self.labels = LabelFeed(settings, consumer_config, self.lookup, inputs.mapping.time_unit, enabled=self.apply)

    def decode(self, records: Sequence[Message], ends: Mapping[int, int]) -> messages.Batch:
        """Parse the batch's messages, then compute their features: applying its transactions in offset order and
        how far that got (``ends``: each partition's last offset in the batch) in one store step, or, waiting for the
        writer, once it has applied up to ``ends``.

        Raises:
            StoreUnavailable: the store cannot be read or written (the batch stays uncommitted).
            WriterBehind: the writer did not get there within ``writer_wait_seconds``.
        """
        transactions, positions, rejects = self._parsed(records)
        lookup = self.lookup
        if self.apply:
            x = lookup.apply_then_compute(transactions, self._progress(ends))
        else:
            if self.wait_for_writer:
                self.wait_written(ends)
            x = lookup.read_then_compute(transactions)
            if transactions:
                self._count_stale(transactions)
        return messages.Batch(x, [t.tx_id for t in transactions], positions, rejects)

    def _count_stale(self, transactions: Sequence[Transaction]) -> None:
        """Count (``fraud_stream_stale_features``) and log the transactions read more than the store's grace behind
        its latest event, checked after the read: their windows may miss events the writer already trimmed."""
        now = self.lookup.call("read", lambda store: store.latest_time())
        if now is None:
            return
        stale = sum(now - t.event_time > self.grace for t in transactions)
        if stale:
            stream_metrics().stale_features.inc(stale)
            log.warning(
                "%d transaction(s) of this batch are more than the store's grace (%gs) behind its latest event: their "
                "features may miss events already trimmed; a scorer that only reads must keep within the grace "
                "(FRAUD_FEATURE_STORE_GRACE_SECONDS)",
                stale,
                self.grace,
            )

    def apply_only(self, records: Sequence[Message], ends: Mapping[int, int]) -> int:
        """The applier's batch (``role=applier``): its transactions applied in offset order, and how far that got in
        each partition (``ends``: the batch's last offset by partition), in one store step. How many were applied
        (not applied before; a message that is no transaction is skipped: the scorers dead-letter it).

        Raises:
            StoreUnavailable: the store cannot be written (the batch stays uncommitted).
        """
        transactions = self._parsed(records)[0]
        return sum(self.lookup.call("apply", lambda store: store.apply_many(transactions, self._progress(ends))))

    def _progress(self, ends: Mapping[int, int]) -> Progress:
        """The store's record of a batch whose last offsets are ``ends``: the next offset of each partition."""
        return {(self.topic, partition): end + 1 for partition, end in ends.items()}

    def wait_written(self, ends: Mapping[int, int]) -> None:
        """Wait until the writer has applied each partition past its offset in ``ends`` (polling the store, from
        0.5 ms up to 5 ms apart); the wait is observed as ``fraud_stream_writer_wait_seconds``.

        Raises:
            WriterBehind: not within ``writer_wait_seconds`` (counted as ``fraud_stream_writer_timeouts``).
            StoreUnavailable: the store cannot be read.
        """
        started = time.monotonic()
        deadline, pause = started + self.wait_seconds, 0.0005
        metrics = stream_metrics()
        while True:
            held = self.lookup.call("progress", lambda store: store.progress(self.topic))
            behind = [(partition, end) for partition, end in sorted(ends.items()) if held.get(partition, 0) <= end]
            if not behind:
                metrics.writer_wait_seconds.observe(time.monotonic() - started)
                return
            if time.monotonic() >= deadline:
                metrics.writer_timeouts.inc()
                partition, end = behind[0]
                at = held.get(partition)
                raise WriterBehind(
                    f"the stream's writer has not applied {self.topic} partition {partition} up to offset {end} "
                    f"within {self.wait_seconds:g}s ("
                    + ("it has applied none of that partition" if at is None else f"its next offset is {at}")
                    + "): is a scorer that applies, or one with role=applier, running on this topic and store? "
                    "The batch is not committed"
                )
            time.sleep(pause)
            pause = min(2 * pause, 0.005)

    def _parsed(self, records: Sequence[Message]) -> tuple[list[Transaction], list[int], list[tuple[int, str, str]]]:
        """The batch's transactions, the position of each among ``records``, and the rejects (position, class,
        reason)."""
        transactions: list[Transaction] = []
        positions: list[int] = []
        rejects: list[tuple[int, str, str]] = []
        for position, record in enumerate(records):
            source = f"{record.topic()}/{record.partition()}/{record.offset()}"
            try:
                row = messages.json_object(record.value(), "a JSON object of the mapping's source columns")
                transactions.append(self.schema.transaction(row, lambda column: column, "message", source))
            except messages.Reject as reject:
                rejects.append((position, reject.kind, str(reject)))
                continue
            except PayloadError as error:
                rejects.append((position, messages.NOT_A_TRANSACTION, str(error)))
                continue
            positions.append(position)
        return transactions, positions, rejects

    def close(self) -> None:
        """Stop the labels feed (committing what it applied) and close the store."""
        self.labels.close()
        self.lookup.close()


@dataclass
class _Partition:
    next_offset: int
    """The offset of the next label to apply (what is committed)."""
    committed: int


class LabelFeed:
    """The labels topic, read to its end before each batch; its own consumer, every partition assigned.

    Every scorer replica reads every label partition (no group balancing): a replica must not score a transaction
    before a label another replica holds. Labels are idempotent, so replicas applying the same label is harmless.
    Offsets are kept under the group ``<group_id>-labels`` only to resume from after a restart. A scorer that only
    reads (``enabled`` false) reads no label.
    """

    def __init__(
        self,
        settings: StreamSettings,
        consumer_config: dict[str, Any],
        lookup: StateLookup,
        time_unit: str,
        enabled: bool = True,
    ) -> None:
        self.enabled = enabled
        self.topic = settings.labels_topic
        self.timeout = settings.delivery_timeout_seconds
        self.idle_seconds = settings.labels_idle_seconds
        self.config = {**consumer_config, "group.id": f"{settings.group_id}-labels"}
        self.config.pop("stats_cb", None)
        self.lookup = lookup
        self.time_unit = time_unit
        self._consumer: Consumer | None = None
        self._ends: Consumer | None = None
        """A second client, assigned nothing, that asks for the topic's end: the consumer's own connection holds a
        fetch that waits up to ``fetch.wait.max.ms`` for labels, and the broker answers a connection's requests in
        order, so asking there costs that wait on every batch (11 ms against 0.2 ms on Tansu, measured)."""
        self._partitions: dict[int, _Partition] = {}
        self._last = time.monotonic()
        self._retry_at = 0.0

    def _start(self) -> Consumer | None:
        """The consumer, assigned every partition of the labels topic from the committed offsets; None if the topic
        does not exist (yet)."""
        from confluent_kafka import OFFSET_INVALID, Consumer, TopicPartition

        consumer = Consumer(self.config)
        try:
            topics = consumer.list_topics(self.topic, timeout=self.timeout).topics
            metadata = topics.get(self.topic)
            if metadata is None or metadata.error is not None or not metadata.partitions:
                consumer.close()
                return None
            wanted = [TopicPartition(self.topic, p) for p in sorted(metadata.partitions)]
            starts = consumer.committed(wanted, timeout=self.timeout)
            for start in starts:
                if start.offset == OFFSET_INVALID:  # nothing committed yet: from the beginning
                    start.offset = consumer.get_watermark_offsets(start, timeout=self.timeout)[0]
                self._partitions[start.partition] = _Partition(start.offset, start.offset)
            consumer.assign(starts)
        except BaseException:
            consumer.close()
            raise
        log.info("labels from %s (%d partitions) as group %s", self.topic, len(starts), self.config["group.id"])
        return consumer

    def catch_up(self, idle: bool = False) -> list[Rejected]:
        """Apply every label up to the end of the labels topic as the broker reports it now; the bad ones, for the
        dead-letter topic. With ``idle`` (no transactions to score) at most once every ``labels_idle_seconds``.

        Raises:
            KafkaException: the labels topic cannot be read within ``delivery_timeout_seconds``.
            StoreUnavailable: a label cannot be written.
        """
        from confluent_kafka import Consumer, KafkaException, TopicPartition

        now = time.monotonic()
        if not self.enabled or (idle and now - self._last < self.idle_seconds) or now < self._retry_at:
            return []
        self._last = now
        if self._consumer is None:
            self._consumer = self._start()
            if self._consumer is None:
                self._missing(now)
                return []
        consumer = self._consumer
        if self._ends is None:
            self._ends = Consumer(self.config)
        ends = {
            p: self._ends.get_watermark_offsets(TopicPartition(self.topic, p), timeout=self.timeout, cached=False)[1]
            for p in self._partitions
        }
        rejected: list[Rejected] = []
        applied = 0
        deadline = now + self.timeout
        while any(self._partitions[p].next_offset < end for p, end in ends.items()):
            if time.monotonic() > deadline:
                raise KafkaException(f"the labels topic {self.topic!r} was not read to its end in {self.timeout:g}s")
            for message in consumer.consume(1000, 0.05):
                error = message.error()
                if error is not None:
                    if error.fatal():
                        raise KafkaException(error)
                    continue
                problem = self._apply(message)
                if problem is None:
                    applied += 1
                else:
                    rejected.append((message, *problem))
                self._partitions[message.partition() or 0].next_offset = (message.offset() or 0) + 1
        metric = stream_metrics().labels
        if applied:
            metric.labels("applied").inc(applied)
        if rejected:
            metric.labels("dead_letter").inc(len(rejected))
        return rejected

    def _missing(self, now: float) -> None:
        """No labels topic: say so, score on without labels, and look again later."""
        self._retry_at = now + MISSING_TOPIC_SECONDS
        log.warning(
            "the labels topic %r does not exist: no labels are applied (terminal risk stays at what the store holds); "
            "looking again in %gs",
            self.topic,
            MISSING_TOPIC_SECONDS,
        )

    def _apply(self, message: Message) -> tuple[str, str] | None:
        """Apply one label message; its reject class and reason if it cannot be, or None."""
        try:
            row = messages.json_object(message.value(), "a JSON object {tx_id, label, label_time}")
            tx_id, label, label_time = parse_label(row, self.time_unit, "label")
        except messages.Reject as reject:
            return (reject.kind if reject.kind == messages.NOT_JSON else messages.NOT_A_LABEL), str(reject)
        except PayloadError as error:
            return messages.NOT_A_LABEL, str(error)
        self.lookup.call("label", lambda store: store.apply_label(tx_id, label, label_time))
        return None

    def commit(self, wait: bool = False) -> None:
        """Commit the labels applied since the last commit (call once their dead letters are delivered)."""
        from confluent_kafka import TopicPartition

        if self._consumer is None:
            return
        moved = [
            TopicPartition(self.topic, p, state.next_offset)
            for p, state in self._partitions.items()
            if state.next_offset > state.committed
        ]
        if not moved:
            return
        if wait:
            self._consumer.commit(offsets=moved, asynchronous=False)
        else:
            self._consumer.commit(offsets=moved, asynchronous=True)
        for offset in moved:
            self._partitions[offset.partition].committed = offset.offset

    def close(self) -> None:
        """Commit what was applied and close the consumer."""
        if self._ends is not None:
            self._ends.close()
            self._ends = None
        if self._consumer is None:
            return
        try:
            self.commit(wait=True)
        except Exception as error:  # the labels were applied: at worst they are applied again after a restart
            log.warning("last labels commit failed: %s", error)
        finally:
            self._consumer.close()
            self._consumer = None
