"""The prediction log: one record per scored row, sent to Kafka by a background thread, never on the request path.

The record is :mod:`fraud_detection.monitoring.records`' (KServe's InferenceLogger CloudEvent of type
``org.kubeflow.serving.inference.response``, binary content mode on Kafka, keyed by the transaction id).

What the request path does is :meth:`PredictionLog.submit`: it appends one :class:`Scored` batch (the request's
numpy arrays as they are, its ids, its trace id and the time) to a queue bounded in rows, under a lock, and
returns. A full queue drops the batch's rows and counts them. Everything else happens in the log's thread:

* every round (:data:`INTERVAL`) it takes what is queued and makes each row a Kafka message (:func:`encoded`: the
  same bytes as ``records.encode(records.record(...))``, written directly at a tenth of the cost, and the
  single-row batches of a round as one matrix, which matters because the thread shares the interpreter lock
  with the requests);
* confluent-kafka's ``Producer.produce`` hands it to librdkafka's own bounded queue, which batches and sends it;
  a full one (``BufferError``: the broker is down or slow) drops the record, counted;
* librdkafka reports each message's fate through ``poll``: delivered (counted as sent) or failed, for example no
  broker within ``prediction_log_timeout_seconds`` (counted as dropped).

So every row submitted ends as exactly one sent or one dropped record (:data:`DROP_REASONS`), and once the queues
are empty ``sent + dropped`` equals the rows scored. Memory is bounded by the two queues: at most
``prediction_log_queue_rows`` rows in each (librdkafka's also by :data:`PRODUCER_KBYTES`).
"""

from __future__ import annotations

import functools
import logging
import threading
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Any, Final, NamedTuple

import numpy as np
import orjson

from fraud_detection.monitoring.records import CONTENT_TYPE, ENDPOINTS, RESPONSE_TYPE, Endpoint

log = logging.getLogger(__name__)

LIBRDKAFKA_LOGGER = "serving.prediction_log.librdkafka"
"""librdkafka's own log lines (one per failed connection attempt while the broker is down) go to this logger."""
PRODUCER_KBYTES = 32 * 1024
"""librdkafka's queue holds at most this many kilobytes of records (about 1.2 kB each for the public schema)."""
LINGER_MS = 20
"""librdkafka waits this long to fill a batch: fewer, larger requests to the broker."""
INTERVAL = 0.02
"""Seconds the log's thread waits for work (and serves librdkafka's reports) between two rounds."""
DROP_REASONS: Final = ("queue_full", "producer_full", "undelivered", "unencodable")
"""Why a record was dropped: the log's queue was full, librdkafka's was (``BufferError``), the broker never took
it (a delivery error: timeout, unknown topic, the server stopping before it went, ...), or it failed to encode
(or the producer refused it: larger than the broker takes).
The shadow challenger adds its own (:mod:`serving.challenger`)."""


class Scored(NamedTuple):
    """What one model call scored, as the request path hands it over: cheap to build, encoded later."""

    endpoint: Endpoint
    model_version: str
    feature_names: Sequence[str]
    x: np.ndarray
    """``[N, F]`` the features as scored."""
    proba: np.ndarray
    decisions: np.ndarray
    ids: Sequence[str] | str
    """The rows' transaction ids, or one prefix: row ``i``'s id is ``f"{ids}/{i}"``."""
    trace_id: int
    """The request's W3C trace id (0 when untraced)."""
    time_us: int
    """When it was scored, in microseconds since the epoch (``time.time_ns() // 1000``)."""
    trace_ids: Sequence[str] | None = None
    """Each row's own W3C trace id (32 hex digits, ``""`` when untraced) when rows carry their own, as the stream's
    messages do; None: every row has ``trace_id``."""


def row_ids(ids: Sequence[str] | str, n: int) -> list[str]:
    """The ``n`` transaction ids of a :class:`Scored` batch."""
    if isinstance(ids, str):
        return [f"{ids}/{i}" for i in range(n)]
    return list(ids)


def event_time(microseconds: int) -> str:
    """``microseconds`` since the epoch as the record's ``time`` attribute (RFC 3339 in UTC, as pydantic writes it)."""
    seconds, micro = divmod(microseconds, 1_000_000)
    text = _second(seconds)
    return f"{text}.{micro:06d}Z" if micro else f"{text}Z"


@functools.lru_cache(maxsize=4)
def _second(seconds: int) -> str:
    """The date and time to the second (formatting it is most of :func:`event_time`'s cost; a second repeats)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class Source:
    """Who scored: the record's ``source``, ``inferenceservicename``, ``namespace`` and ``component``."""

    inference_service: str
    namespace: str
    component: str = "predictor"

    @property
    def source(self) -> str:
        """The ``source`` attribute, as :func:`fraud_detection.monitoring.records.record` makes it."""
        return f"/{self.namespace}/{self.inference_service}/{self.component}"


Message = tuple[bytes, bytes, list[tuple[str, bytes]]]
"""A Kafka message as ``Producer.produce`` takes it: key, value and headers."""


def messages(scored: Scored, where: Source) -> list[Message]:
    """Each row of ``scored`` as a Kafka message (key, value, headers): byte for byte what
    ``records.encode(records.record(prediction, ...))`` gives for the row's :class:`records.Prediction`."""
    return [message for _, found in encoded([scored], where) for message in found]


def encoded(work: Sequence[Scored], where: Source) -> list[tuple[Endpoint, list[Message]]]:
    """Every row of ``work`` as a Kafka message (:func:`messages`), by run of batches sharing an endpoint, a model
    version and feature names: ``(endpoint, messages)`` for each run.

    This runs in the log's thread, which shares the interpreter lock with the requests, once per round: a run of
    single-row batches (the server's usual traffic) is encoded as one matrix (one ``tolist`` per array, not one
    per request), the headers every record shares are made once, and each row costs a dict, an
    ``orjson.dumps`` and a list. A run that cannot be encoded raises (the caller drops its rows, counted)."""
    runs = []
    start = 0
    while start < len(work):
        first = work[start]
        end = start + 1
        while end < len(work) and _same_run(work[end], first):
            end += 1
        runs.append(work[start:end])
        start = end
    return [(run[0].endpoint, _run_messages(run, where)) for run in runs]


def _same_run(scored: Scored, first: Scored) -> bool:
    return (
        scored.endpoint == first.endpoint
        and scored.model_version == first.model_version
        and (scored.feature_names is first.feature_names or list(scored.feature_names) == list(first.feature_names))
        and scored.x.shape[1:] == first.x.shape[1:]
    )


def _trace(trace_id: int) -> str:
    return f"{trace_id:032x}" if trace_id else ""


def _run_messages(run: Sequence[Scored], where: Source) -> list[Message]:
    """The messages of a run of batches sharing an endpoint, a model version and feature names (:func:`encoded`)."""
    first = run[0]
    names, version = first.feature_names, first.model_version
    if len(run) == 1:
        x, proba, decisions = first.x, first.proba, first.decisions
    else:
        x = np.concatenate([s.x for s in run])
        proba = np.concatenate([s.proba for s in run])
        decisions = np.concatenate([s.decisions for s in run])
    ids: list[str] = []
    whens: list[tuple[str, bytes]] = []
    traces: list[str] = []
    for scored in run:
        n = len(scored.proba)
        ids += row_ids(scored.ids, n)
        whens += [("ce_time", event_time(scored.time_us).encode())] * n
        traces += scored.trace_ids if scored.trace_ids is not None else [_trace(scored.trace_id)] * n
    if x.shape[1] != len(names) or not len(ids) == len(x) == len(proba) == len(decisions) == len(whens) == len(traces):
        raise ValueError(f"a batch of {len(x)} rows of {x.shape[1]} features does not match its names, ids or scores")
    if not ids:
        return []
    source, after = _headers(where, first.endpoint)
    values = _values(names, version, ids, x, proba, decisions, traces)
    found = []
    for tx_id, value, when in zip(ids, values, whens, strict=True):
        key = tx_id.encode()
        found.append((key, value, [_CONTENT_TYPE, ("ce_id", key), source, when, *after]))
    return found


_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_VALUE = b'{"transaction_id":%b,"model_version":%b,"features":%b},"probability":%b,"decision":%b,"trace_id":%b}'


def _values(
    names: Sequence[str],
    version: str,
    ids: list[str],
    x: np.ndarray,
    proba: np.ndarray,
    decisions: np.ndarray,
    traces: list[str],
) -> list[bytes]:
    """The JSON data of each row: the bytes ``records.encode`` gives for the row's :class:`records.Prediction`, but
    with every number of the run written by two ``orjson.dumps`` calls (the matrix and the probabilities, as
    float64, which is what the record's floats are) and spliced between the names: half the cost of a dict and a
    ``dumps`` per row."""
    width = len(names)
    prefixes = _prefixes(tuple(names))
    numbers = orjson.dumps(x.astype(np.float64, copy=False), option=_NUMPY)[2:-2].replace(b"],[", b",").split(b",")
    parts: list[bytes] = [b""] * (2 * width * len(ids))
    parts[0::2] = prefixes * len(ids)
    parts[1::2] = numbers
    probabilities = orjson.dumps(proba.astype(np.float64, copy=False), option=_NUMPY)[1:-1].split(b",")
    if len(probabilities) != len(ids):
        raise ValueError(f"{len(probabilities)} probabilities for {len(ids)} rows")
    model_version, join, dumps, step = orjson.dumps(version), b"".join, orjson.dumps, 2 * width
    return [
        _VALUE
        % (
            dumps(tx_id),
            model_version,
            join(parts[i * step : (i + 1) * step]),
            probability,
            b"true" if decision else b"false",
            dumps(trace),
        )
        for i, (tx_id, probability, decision, trace) in enumerate(
            zip(ids, probabilities, decisions.tolist(), traces, strict=True)
        )
    ]


@functools.lru_cache(maxsize=8)
def _prefixes(names: tuple[str, ...]) -> list[bytes]:
    """What comes before each feature's number in the data's ``features`` object: ``{"V1":``, ``,"V2":``, ..."""
    return [(b"," if i else b"{") + orjson.dumps(name) + b":" for i, name in enumerate(names)]


_CONTENT_TYPE = ("content-type", CONTENT_TYPE.encode())


@functools.lru_cache(maxsize=64)
def _headers(where: Source, endpoint: str) -> tuple[tuple[str, bytes], tuple[tuple[str, bytes], ...]]:
    """The headers every record of ``endpoint`` shares: the one before ``ce_time``, and those after it."""
    return ("ce_source", where.source.encode()), (
        ("ce_inferenceservicename", where.inference_service.encode()),
        ("ce_namespace", where.namespace.encode()),
        ("ce_component", where.component.encode()),
        ("ce_endpoint", endpoint.encode()),
        ("ce_type", RESPONSE_TYPE.encode()),
        ("ce_specversion", b"1.0"),
    )


@dataclass(frozen=True)
class LogMetrics:
    """The log's Prometheus counters, by endpoint: records sent, and records dropped by reason."""

    sent: Any
    dropped: Any


@functools.cache
def log_metrics() -> LogMetrics:
    """The counters, registered on first use (once per process)."""
    from prometheus_client import Counter

    return LogMetrics(
        sent=Counter(
            "fraud_prediction_log_sent",
            "Prediction-log records the broker acknowledged",
            ["endpoint"],
        ),
        dropped=Counter(
            "fraud_prediction_log_dropped",
            "Prediction-log records dropped, by reason (queue_full, producer_full, undelivered, unencodable)",
            ["endpoint", "reason"],
        ),
    )


class PredictionLog:
    """Sends every :class:`Scored` batch handed to :meth:`submit` to ``topic``, one record per row.

    ``config`` is librdkafka's (at least ``bootstrap.servers``). :meth:`start` starts the thread; :meth:`close`
    sends what it can within a timeout and counts the rest as dropped.
    """

    def __init__(
        self,
        config: dict[str, Any],
        topic: str,
        where: Source,
        max_rows: int,
        timeout_seconds: float,
    ) -> None:
        self.topic = topic
        self.where = where
        self.max_rows = max_rows
        self.config: dict[str, Any] = {
            "queue.buffering.max.messages": max_rows,
            "queue.buffering.max.kbytes": PRODUCER_KBYTES,
            "linger.ms": LINGER_MS,
            "message.timeout.ms": int(timeout_seconds * 1000),
            "logger": logging.getLogger(LIBRDKAFKA_LOGGER),
            **config,
        }
        self.metrics = log_metrics()
        self._pending: list[Scored] = []
        self._queued = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._producer: Any = None
        self._sent: dict[str, int] = {}
        self._undelivered: dict[str, int] = {}
        self._reports = {endpoint: functools.partial(self._delivered, endpoint) for endpoint in ENDPOINTS}

    # -- the request path ------------------------------------------------------------------------------

    def submit(self, scored: Scored) -> None:
        """Queue ``scored`` for the thread, or drop its rows (counted) when the queue is full. Never blocks
        beyond a short lock, never raises for a full queue or a missing broker."""
        n = len(scored.proba)
        with self._lock:
            if self._queued + n <= self.max_rows and not self._stopping.is_set():
                self._pending.append(scored)
                self._queued += n
                return
        self.metrics.dropped.labels(scored.endpoint, "queue_full").inc(n)

    def queued(self) -> int:
        """Rows waiting in the log's own queue (not yet handed to librdkafka)."""
        return self._queued

    # -- the log's thread ------------------------------------------------------------------------------

    def start(self) -> None:
        """Make the producer and start the thread (a producer needs no broker to start)."""
        from confluent_kafka import Producer

        self._producer = Producer(self.config)
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        log.info(
            "prediction log on: topic %s at %s (queue %d rows)",
            self.topic,
            self.config.get("bootstrap.servers"),
            self.max_rows,
        )

    def _delivered(self, endpoint: str, error: Any, message: Any) -> None:
        """librdkafka's report on one message of ``endpoint`` (called from ``poll`` in the log's thread)."""
        counts = self._sent if error is None else self._undelivered
        counts[endpoint] = counts.get(endpoint, 0) + 1

    def _take(self) -> list[Scored]:
        with self._lock:
            batch, self._pending = self._pending, []
            self._queued = 0
        return batch

    def _encoded(self, work: list[Scored]) -> list[tuple[Endpoint, list[Message]]]:
        """``work``'s messages (:func:`encoded`); a batch that cannot be encoded is dropped alone, counted."""
        try:
            return encoded(work, self.where)
        except Exception:  # find the batch at fault: the others are sent
            runs = []
            for scored in work:
                try:
                    runs += encoded([scored], self.where)
                except Exception as error:  # a row that cannot be encoded must not stop the thread
                    log.error("prediction-log record not encoded: %s", error)
                    self.metrics.dropped.labels(scored.endpoint, "unencodable").inc(len(scored.proba))
            return runs

    def _send(self, work: list[Scored]) -> None:
        producer, topic = self._producer, self.topic
        for endpoint, found in self._encoded(work):
            report = self._reports[endpoint]
            full = refused = 0
            for key, value, headers in found:
                try:
                    producer.produce(topic, value, key, headers=headers, on_delivery=report)
                except BufferError:
                    full += 1
                except Exception as error:  # e.g. larger than the broker takes: counted, the thread goes on
                    refused += 1
                    log.error("prediction-log record refused by the producer: %s", error)
            if full:
                self.metrics.dropped.labels(endpoint, "producer_full").inc(full)
            if refused:
                self.metrics.dropped.labels(endpoint, "unencodable").inc(refused)

    def _count_reports(self) -> None:
        sent, self._sent = self._sent, {}
        undelivered, self._undelivered = self._undelivered, {}
        for endpoint, count in sent.items():
            self.metrics.sent.labels(endpoint).inc(count)
        for endpoint, count in undelivered.items():
            self.metrics.dropped.labels(endpoint, "undelivered").inc(count)

    def _run(self) -> None:
        producer = self._producer
        # A round every INTERVAL, whatever arrives: under a steady trickle of requests a loop that goes round as soon
        # as there is work would wake for every request and take the interpreter lock from the requests each time.
        while not self._stopping.wait(INTERVAL):
            self._send(self._take())
            producer.poll(0)
            self._count_reports()

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking batches, send what is queued within ``timeout`` seconds; what is left is dropped (counted)."""
        self._stopping.set()
        if self._thread is None:
            return
        self._thread.join(timeout)
        self._send(self._take())
        left = self._producer.flush(timeout)
        if left:  # purged messages are reported as failed deliveries: counted as undelivered, by endpoint
            log.warning("prediction log stopped with %d records not delivered", left)
            self._producer.purge()
            self._producer.flush(0)
        self._count_reports()
