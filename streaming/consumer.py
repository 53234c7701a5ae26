"""The scoring loop: take a batch from Kafka, score it, send every result, and commit once they are acknowledged.

Delivery is at-least-once. A batch's offsets are committed only once every result and dead letter of it and of
every batch before it has been acknowledged by the broker (:mod:`streaming.delivery`); the scorer goes on scoring
the next batches meanwhile (at most ``batches_in_flight`` await acknowledgement). A consumer killed before that
leaves those batches uncommitted, and whichever consumer gets its partitions next scores them again. The commit
itself is sent without waiting for its answer; a commit lost with the process only means its batches are scored
again, and a clean stop, or partitions taken away by a rebalance, first waits for every result and then commits
and waits for that. Results are idempotent (:mod:`streaming.messages`), so a transaction
scored twice has two identical results, never two different ones.

Batches are adaptive (:func:`take`): the scorer takes whatever has arrived, up to ``batch_size``, and never
waits for a batch to fill, so a message is scored as soon as it is fetched at low rates, and batches grow to
``batch_size`` when the scorer falls behind (docs/streaming.md, "Where the second went").

Scoring is the server's: the model directory is loaded by :func:`serving.scoring.load_model`, rows are validated
by :func:`serving.payload.parse_v1` and scored by :func:`serving.scoring.predict_proba`, and the same Prometheus
metrics are counted (:func:`serving.scoring.record_scores`). Between batches the model directory is checked for a
new champion (``reload_check_seconds``) and reloaded when it moved; a failed reload keeps the model in service.

A model trained on raw transactions (its metadata has ``transactions``) takes raw transactions instead, reads and
updates the entity-state store and applies labels from their own topic (:mod:`streaming.transactions`).
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
import threading
import time
from collections.abc import Callable
from functools import partial
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np

from fraud_detection import storage
from fraud_detection.features.store import StoreUnavailable
from fraud_detection.modeldir import METADATA_FILE
from serving import heap, scoring, telemetry
from streaming import kafka, messages, transactions
from streaming.delivery import Deliveries, DeliveryError, on_commit
from streaming.metrics import on_stats, stream_metrics
from streaming.prediction_log import StreamLog
from streaming.settings import StreamSettings

if TYPE_CHECKING:
    from confluent_kafka import Consumer, Message, Producer

log = logging.getLogger(__name__)
prediction_log = logging.getLogger(telemetry.PREDICTION_LOGGER)


def model_fingerprint(uri: str) -> str:
    """A hash of the model directory's metadata (version, threshold, creation time): it changes when the champion moves.

    A local ``champion`` link is followed, so switching the link to a new version changes it.
    """
    target = f"{uri.rstrip('/')}/{METADATA_FILE}"
    if storage.is_gcs(uri):
        with tempfile.TemporaryDirectory(prefix="fraud-meta-") as directory:
            data = storage.download_file(target, Path(directory) / METADATA_FILE).read_bytes()
    else:
        data = Path(target).read_bytes()
    return hashlib.sha256(data).hexdigest()


def client_configs(settings: StreamSettings) -> tuple[dict[str, Any], dict[str, Any]]:
    """The librdkafka settings of the consumer and of the producer (``kafka_options`` override them); librdkafka's
    log lines go through Python logging (:mod:`streaming.kafka`)."""
    common: dict[str, Any] = kafka.logged({"bootstrap.servers": settings.bootstrap_servers})
    consumer = {
        **common,
        "group.id": settings.group_id,
        "enable.auto.commit": False,
        "auto.offset.reset": "earliest",
        # A consumer that dies (kill -9, a node lost) holds its partitions until its session times out.
        "session.timeout.ms": 10000,
        "heartbeat.interval.ms": 1000,
        "statistics.interval.ms": 5000,
        "stats_cb": on_stats,
        # How long the broker may hold a fetch with nothing new. Kafka answers as soon as data arrive; on Tansu
        # (the tests' and benchmark's broker) a message's latency grows with it (docs/streaming.md).
        "fetch.wait.max.ms": 10,
        **settings.kafka_options,
    }
    producer = {
        **common,
        "acks": "all",
        # Results are not flushed batch by batch (streaming.delivery): they leave after this long at most.
        "linger.ms": 1,
        "batch.num.messages": 10000,
        "queue.buffering.max.messages": 1_000_000,
        **settings.kafka_options,
    }
    return consumer, producer


def readable(batch: list[Message]) -> tuple[list[Message], dict[int, int]]:
    """The batch's messages without the consumer's error events, and each partition's last offset in it.

    Raises:
        KafkaException: a fatal consumer error (others are logged and skipped).
    """
    from confluent_kafka import KafkaError, KafkaException

    records = []
    ends: dict[int, int] = {}
    for message in batch:
        error = message.error()
        if error is not None:
            if error.fatal():
                raise KafkaException(error)
            if error.code() != KafkaError._PARTITION_EOF:
                log.warning("consumer error: %s", error)
            continue
        records.append(message)
        ends[message.partition()] = message.offset()  # type: ignore[index,assignment]
    return records, ends


def take(consumer: Consumer, most: int, wait: float) -> list[Message]:
    """The next batch: whatever has already arrived, up to ``most`` messages; never waits for a batch to fill.

    When nothing is queued it waits at most ``wait`` seconds for the first message, then takes it with whatever
    came with it. At low rates batches are small and each message is scored as soon as it is fetched; at high
    rates the fetch queue holds thousands and batches grow to ``most``, which keeps the throughput.
    (``consumer.consume(most, wait)`` would instead hold every message until ``most`` arrived or ``wait`` passed.)
    """
    batch = consumer.consume(most, 0)
    if batch or wait <= 0:
        return batch
    first = consumer.consume(1, wait)
    if not first or most == 1:
        return first
    return first + consumer.consume(most - 1, 0)


class StreamScorer:
    """Consumes ``input_topic`` as ``group_id``; scores, writes results and dead letters, commits (module doc)."""

    def __init__(self, settings: StreamSettings) -> None:
        if settings.role == "applier":  # its own group, for the input and the labels, beside the scorers'
            settings = settings.model_copy(update={"group_id": f"{settings.group_id}-applier"})
        self.settings = settings
        self.model: scoring.LoadedModel | None = None
        self._fingerprint = ""
        self._checked = 0.0
        self._failed_deliveries: list[str] = []
        self._deliveries = Deliveries(settings.input_topic, settings.delivery_timeout_seconds)
        self._tracer: Any = None
        self.raw: transactions.RawTransactions | None = None
        self.prediction_records = StreamLog(settings)  # off without FRAUD_PREDICTION_LOG_BOOTSTRAP_SERVERS

    # -- model -----------------------------------------------------------------------------------------

    def load(self) -> bool:
        """Load the model directory (and, for raw transactions, reach its store); True on success. Logs one clear
        line on failure; never raises."""
        uri = self.settings.model_uri
        started = time.perf_counter()
        try:
            fingerprint = model_fingerprint(uri)
            model = scoring.load_model(uri, self.settings.predict_threads, self.settings.model_name)
            self._use_transactions(model)
        except Exception as error:  # storage or format: keep what serves (if anything) and retry later
            log.error("model not loaded from %s: %s: %s", uri, type(error).__name__, error)
            return False
        previous = self.model
        self.model, self._fingerprint = model, fingerprint
        heap.freeze()  # the imports and the model (about 160,000 objects) out of the collector's view: a full
        # collection no longer walks them (about 44 ms here) while every message in flight waits
        log.info(
            "model %s version %s loaded from %s in %.2fs (threshold %.4f)%s",
            model.metadata.model_name,
            model.metadata.model_version,
            uri,
            time.perf_counter() - started,
            model.metadata.threshold,
            f", replacing version {previous.metadata.model_version}" if previous else "",
        )
        return True

    def _use_transactions(self, model: scoring.LoadedModel) -> None:
        """Raw transactions when the model's metadata has ``transactions`` (the store must answer); the same store
        while they do not change."""
        inputs = model.metadata.transactions
        if self.raw is not None and inputs == self.raw.inputs:
            return
        raw = None
        if inputs is None and self.settings.role == "applier":
            raise ValueError("role=applier needs a model trained on raw transactions (its metadata has none)")
        if inputs is not None:
            raw = transactions.RawTransactions(self.settings, inputs, client_configs(self.settings)[0])
            if problem := raw.lookup.check():
                raw.close()
                raise StoreUnavailable(problem)
        if self.raw is not None:
            self.raw.close()
        self.raw = raw

    def load_until_ready(self, stop: threading.Event) -> bool:
        """Retry :meth:`load` with a doubling wait until it works; False if ``stop`` was set or retries are off."""
        return scoring.retry_load(self.load, self.settings.load_retry_seconds, stop, self.settings.model_name)

    def maybe_reload(self) -> None:
        """Reload when the model metadata changed (the champion moved); checked every ``reload_check_seconds``."""
        every = self.settings.reload_check_seconds
        now = time.monotonic()
        if every <= 0 or now - self._checked < every:
            return
        self._checked = now
        try:
            fingerprint = model_fingerprint(self.settings.model_uri)
        except Exception as error:  # a champion being switched, or storage down: look again next time
            log.warning("cannot check the model at %s: %s", self.settings.model_uri, error)
            return
        if fingerprint != self._fingerprint:
            log.info("the model at %s changed: reloading", self.settings.model_uri)
            self.load()

    # -- the loop --------------------------------------------------------------------------------------

    def _on_delivery(self, error: Any, message: Any) -> None:
        """A result's or dead letter's delivery report: failures are kept for :meth:`_wait_delivered`."""
        if error is not None:
            self._failed_deliveries.append(f"{message.topic()}: {error}")

    def run(self, stop: threading.Event) -> int:
        """Load the model, then consume until ``stop`` is set. Returns the exit code (1: the model never loaded)."""
        from confluent_kafka import Consumer, Producer
        from opentelemetry import trace

        if not self.load_until_ready(stop):
            return 0 if stop.is_set() else 1
        self._tracer = trace.get_tracer("streaming.consumer")
        consumer_config, producer_config = client_configs(self.settings)
        applier = self.settings.role == "applier"
        producer = Producer({**producer_config, "on_delivery": self._on_delivery})
        consumer = Consumer({**consumer_config, "on_commit": on_commit})
        # Partitions taken away: every result sent is acknowledged and committed first, for their next owner.
        consumer.subscribe(
            [self.settings.input_topic], on_revoke=lambda consumer, _: self._deliveries.commit_all(consumer, producer)
        )
        log.info(
            "consuming %s as group %s from %s: %s, dead letters to %s",
            self.settings.input_topic,
            self.settings.group_id,
            self.settings.bootstrap_servers,
            "applying to the feature store, scoring nothing" if applier else f"results to {self.settings.output_topic}",
            self.settings.dead_letter_topic,
        )
        try:
            while not stop.is_set():
                batch = take(consumer, self.settings.batch_size, self.settings.batch_wait_seconds)
                if batch and applier:
                    self.apply_batch(batch, consumer, producer)
                elif batch:
                    self.process(batch, consumer, producer)
                else:
                    self._deliveries.commit(consumer, producer)
                    if self.raw is not None:
                        self._apply_labels(producer, idle=True)
                self.maybe_reload()
            self._deliveries.commit_all(consumer, producer)  # earlier commits land before the group is left
        finally:
            consumer.close()
            if self.raw is not None:
                self.raw.close()
            producer.flush(self.settings.delivery_timeout_seconds)
            self.prediction_records.close()
            log.info("stream scorer stopped")
        return 0

    def process(self, batch: list[Message], consumer: Consumer, producer: Producer) -> None:
        """Score one batch and send its results and dead letters; commit the batches acknowledged by then.

        The batch's own offsets are committed by a later call, once its results are acknowledged (module doc);
        raw transactions still wait for them here, before their labels' offsets are committed.

        Raises:
            DeliveryError: a result was not acknowledged; its batch and the later ones are not committed.
        """
        started = time.perf_counter()
        model = self.model
        assert model is not None
        self._deliveries.commit(consumer, producer, most=self.settings.batches_in_flight - 1)
        records, ends = readable(batch)
        raw = self.raw
        if raw is not None:
            rejected = raw.labels.catch_up()  # every label acknowledged before these transactions is applied first
            decoded = raw.decode(records, ends)
        else:
            rejected = []
            decoded = messages.decode_batch([m.value() for m in records], [m.key() for m in records])
        flagged = 0
        sent = self._deliveries.start(ends)
        with self._tracer.start_as_current_span(
            "score-batch",
            attributes={
                "model.name": self.settings.model_name,
                "model.version": model.metadata.model_version,
                "batch.size": len(records),
            },
        ):
            if decoded.ids:
                flagged = self._send_results(model, records, decoded, producer, sent.report)
            for position, kind, reason in decoded.rejects:
                self._send_dead_letter(records[position], kind, reason, producer, sent.report)
            for record, kind, reason in rejected:
                self._send_dead_letter(record, kind, reason, producer, sent.report)
            sent.seal(len(decoded.ids) + len(decoded.rejects) + len(rejected))
            if raw is not None:
                self._deliveries.commit(consumer, producer, most=0)
                raw.labels.commit()
            else:
                self._deliveries.commit(consumer, producer)  # what the reports already in free
        self._observe(records, decoded, model.metadata.model_version, flagged, time.perf_counter() - started)

    def apply_batch(self, batch: list[Message], consumer: Consumer, producer: Producer) -> None:
        """The applier's batch (``role=applier``): every label up to the labels topic's end, then the batch's
        transactions with how far each partition got, in one store step; the bad labels' dead letters acknowledged;
        then the labels' and the batch's offsets committed (a redelivered batch changes nothing in the store).

        Raises:
            StoreUnavailable: the store cannot be written (the batch stays uncommitted).
            DeliveryError: a dead letter was not acknowledged (nothing committed).
        """
        from confluent_kafka import TopicPartition

        started = time.perf_counter()
        raw = self.raw
        assert raw is not None
        records, ends = readable(batch)
        rejected = raw.labels.catch_up()  # every label acknowledged before these transactions is applied first
        applied = raw.apply_only(records, ends)
        for record, kind, reason in rejected:
            self._send_dead_letter(record, kind, reason, producer)
        if rejected:
            self._wait_delivered(producer)
        raw.labels.commit()
        topic = self.settings.input_topic
        if ends:
            consumer.commit(offsets=[TopicPartition(topic, p, end + 1) for p, end in ends.items()], asynchronous=True)
        metrics = stream_metrics()
        metrics.messages.labels("applied").inc(applied)
        metrics.messages.labels("not_applied").inc(len(records) - applied)
        metrics.batch_seconds.observe(time.perf_counter() - started)

    def _apply_labels(self, producer: Producer, idle: bool) -> None:
        """With no transactions to score: apply the labels that arrived, dead-letter the bad ones, commit."""
        assert self.raw is not None
        for record, kind, reason in self.raw.labels.catch_up(idle):
            self._send_dead_letter(record, kind, reason, producer)
        self._wait_delivered(producer)
        self.raw.labels.commit()

    def _send_results(
        self,
        model: scoring.LoadedModel,
        records: list[Message],
        decoded: messages.Batch,
        producer: Producer,
        report: Callable[[Any, Any], None],
    ) -> int:
        """Score the decoded rows and queue one result per transaction (its trace context kept), each reporting its
        delivery to ``report``; the number flagged."""
        settings = self.settings
        version, threshold = model.metadata.model_version, float(model.metadata.threshold)
        proba = scoring.predict_proba(model.model, decoded.x)
        decisions = proba >= threshold
        flagged = scoring.record_scores(settings.model_name, version, proba, decisions)
        self.prediction_records.submit(model, records, decoded, proba, decisions)  # queued only: never waits
        produce, result = producer.produce, messages.result_value
        output = settings.output_topic
        for transaction_id, position, p, d in zip(
            decoded.ids, decoded.positions, proba.tolist(), decisions.tolist(), strict=True
        ):
            headers = records[position].headers()
            traceparent = messages.header(headers, messages.TRACEPARENT) if headers else None  # type: ignore[arg-type]
            value = result(transaction_id, p, d, version, threshold, traceparent)
            trace_headers: Any = [(messages.TRACEPARENT, traceparent.encode())] if traceparent else None
            try:
                produce(output, value, transaction_id.encode(), headers=trace_headers, on_delivery=report)
            except BufferError:  # the local queue is full: wait for room
                key = transaction_id.encode()
                self._produce(partial(produce, on_delivery=report), producer, output, key, value, trace_headers)
        return flagged

    def _send_dead_letter(
        self,
        record: Message,
        kind: str,
        reason: str,
        producer: Producer,
        report: Callable[[Any, Any], None] | None = None,
    ) -> None:
        """Queue the original message to the dead-letter topic, with why and where it came from in its headers; its
        delivery reports to ``report`` (else to the producer's own callback)."""
        headers = [
            *(record.headers() or []),
            (messages.REASON_HEADER, reason.encode()),
            (messages.CLASS_HEADER, kind.encode()),
            (messages.SOURCE_HEADER, f"{record.topic()}/{record.partition()}/{record.offset()}".encode()),
        ]
        produce = producer.produce if report is None else partial(producer.produce, on_delivery=report)
        self._produce(produce, producer, self.settings.dead_letter_topic, record.key(), record.value(), headers)
        stream_metrics().dead_letters.labels(kind).inc()
        log.warning("dead letter %s/%d/%d (%s): %s", record.topic(), record.partition(), record.offset(), kind, reason)

    def _wait_delivered(self, producer: Producer) -> None:
        """Wait for the broker to acknowledge everything queued; raise :class:`DeliveryError` if it did not."""
        timeout = self.settings.delivery_timeout_seconds
        remaining = producer.flush(timeout)
        if remaining or self._failed_deliveries:
            failures, self._failed_deliveries = self._failed_deliveries, []
            raise DeliveryError(
                f"{remaining} result(s) still queued after {timeout}s"
                + (f", {len(failures)} failed (first: {failures[0]})" if failures else "")
                + ": the batch is not committed and will be scored again"
            )

    def _observe(
        self, records: list[Message], decoded: messages.Batch, version: str, flagged: int, seconds: float
    ) -> None:
        """Count the batch, its end-to-end latencies (from each message's timestamp), and log its record."""
        done = time.time()
        metrics = stream_metrics()
        metrics.messages.labels("scored").inc(len(decoded.ids))
        if decoded.rejects:
            metrics.messages.labels("dead_letter").inc(len(decoded.rejects))
        metrics.batch_seconds.observe(seconds)
        stamps = [stamp for stamp_type, stamp in (record.timestamp() for record in records) if stamp_type]
        if stamps:
            seconds_since = np.maximum(done - np.asarray(stamps, dtype=np.float64) / 1000.0, 0.0)
            telemetry.observe_many(metrics.latency_seconds, seconds_since)
        prediction_log.info(
            "scored batch",
            extra={
                "json_fields": {
                    "event": "stream_batch",
                    "model_name": self.settings.model_name,
                    "model_version": version,
                    "batch_size": len(records),
                    "scored": len(decoded.ids),
                    "dead_letters": len(decoded.rejects),
                    "flagged": flagged,
                    "latency_ms": round(seconds * 1000, 3),
                }
            },
        )

    @staticmethod
    def _produce(
        produce: Any, producer: Producer, topic: str, key: bytes | None, value: bytes | None, headers: Any
    ) -> None:
        """``producer.produce``, waiting for room when the local queue is full."""
        while True:
            try:
                produce(topic, value, key, headers=headers)
                return
            except BufferError:
                producer.poll(0.05)
