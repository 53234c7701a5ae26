"""The prediction log: one record per scored row, sent to Kafka by a process of its own, never on the request path.

The records are :mod:`serving.log_records`' (KServe's InferenceLogger CloudEvent of type
``org.kubeflow.serving.inference.response``, binary content mode on Kafka, keyed by the transaction id).

What the request path does is :meth:`PredictionLog.submit`: it appends one :class:`Scored` batch (the request's
numpy arrays as they are, its ids, its trace id and the time) to a queue bounded in rows, under a lock, and
returns. A full queue drops the batch's rows and counts them. The rest happens away from the requests:

* every round (:data:`INTERVAL`, 0.1 s) the log's thread takes what is queued, stacks each run of batches into a few
  arrays (:func:`serving.log_records.pack`; a batch whose shapes do not agree is dropped alone, counted) and sends
  them down a pipe to the sender process (:mod:`serving.log_sender`): one pickle a round;
* the sender encodes each row (the interpreter work that, in this process, would take the interpreter lock from
  the requests: about 12 µs a record) and hands it to librdkafka, whose queue is bounded too, and reports what
  was sent or dropped back up the pipe; the thread adds it to this process's Prometheus counters.

So every row submitted ends as exactly one sent or one dropped record (:data:`DROP_REASONS`), and once the queues
are empty ``sent + dropped`` equals the rows scored. If the sender dies, what it was given and had not reported is
counted as undelivered, and the next round starts a new one
(at most every :data:`RESTART_SECONDS`). Memory is bounded by the queues: at most
``prediction_log_queue_rows`` rows in this process's, and as many in librdkafka's (also by :data:`PRODUCER_KBYTES`);
the pipe holds at most a round while the sender is busy.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import threading
import time
from collections import Counter
from dataclasses import dataclass
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any, Final

from serving import log_sender
from serving.log_records import Packed, Scored, Source, check, pack

log = logging.getLogger(__name__)

LIBRDKAFKA_LOGGER = "serving.prediction_log.librdkafka"
"""librdkafka's own log lines (one per failed connection attempt while the broker is down) go to this logger."""
PRODUCER_KBYTES = 32 * 1024
"""librdkafka's queue holds at most this many kilobytes of records (about 1.2 kB each for the public schema)."""
LINGER_MS = 100
"""librdkafka waits this long to fill a batch: fewer, larger requests to the broker (a record reaches it within
about 0.2 s of its request; at 20 ms the broker spent three times the CPU per record)."""
INTERVAL = 0.1
"""Seconds the log's thread waits for work between two rounds (and the sender between two reports): a round
every 0.1 s, whatever arrives, so the thread takes the interpreter lock from the requests ten times a second."""
RESTART_SECONDS = 5.0
"""A sender that died is replaced at most this often; meanwhile the rounds are counted as undelivered."""
START_SECONDS = 30.0
"""How long :meth:`PredictionLog.close` also allows the sender to start, if it has not yet."""
DROP_REASONS: Final = ("queue_full", "producer_full", "undelivered", "unencodable")
"""Why a record was dropped: the log's queue was full, librdkafka's was (``BufferError``), the broker never took
it (a delivery error: timeout, unknown topic, the server stopping before it went, the sender dying, ...), or it
failed to encode (or the producer refused it: larger than the broker takes).
The shadow challenger adds its own (:mod:`serving.challenger`)."""


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

    ``config`` is librdkafka's (at least ``bootstrap.servers``). :meth:`start` starts the sender process and the
    thread; :meth:`close` sends what it can within a timeout and counts the rest as dropped.
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
            **config,
        }
        self.metrics = log_metrics()
        self._pending: list[Scored] = []
        self._queued = 0
        self._lock = threading.Lock()
        self._stopping = threading.Event()
        self._thread: threading.Thread | None = None
        self._sender: BaseProcess | None = None
        self._conn: Connection | None = None
        self._restart_at = 0.0
        self._handed: Counter[str] = Counter()
        """Rows given to the current sender and not yet reported back, by endpoint."""
        self._librdkafka = logging.getLogger(LIBRDKAFKA_LOGGER)

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
        """Rows waiting in the log's own queue (not yet handed to the sender)."""
        return self._queued

    # -- the log's thread ------------------------------------------------------------------------------

    def start(self) -> None:
        """Start the sender process and the thread (neither needs a broker to start)."""
        self._start_sender()
        self._thread = threading.Thread(target=self._run, name="prediction-log", daemon=True)
        self._thread.start()
        log.info(
            "prediction log on: topic %s at %s (queue %d rows)",
            self.topic,
            self.config.get("bootstrap.servers"),
            self.max_rows,
        )

    def _start_sender(self) -> None:
        self._restart_at = time.monotonic() + RESTART_SECONDS
        self._sender, self._conn = log_sender.start(self.config, self.topic, self.where, INTERVAL)

    def _take(self) -> list[Scored]:
        with self._lock:
            batch, self._pending = self._pending, []
            self._queued = 0
        return batch

    def _packed(self, work: list[Scored]) -> list[Packed]:
        """``work`` stacked in runs (:func:`serving.log_records.pack`); a batch whose shapes do not agree is dropped
        alone, counted."""
        good = []
        for scored in work:
            try:
                check(scored)
            except Exception as error:  # a bad batch must not stop the thread
                log.error("prediction-log record not encoded: %s", error)
                self.metrics.dropped.labels(scored.endpoint, "unencodable").inc(len(scored.proba))
            else:
                good.append(scored)
        return pack(good)

    def _hand(self, runs: list[Packed]) -> None:
        """Send ``runs`` to the sender; if it is gone, count the rows it had and these as undelivered, and start
        another."""
        if not runs:
            return
        if self._conn is None and time.monotonic() >= self._restart_at and not self._stopping.is_set():
            self._start_sender()
        if self._conn is None:
            self._lost(runs)
            return
        try:
            self._conn.send(runs)
        except (OSError, ValueError):
            self._lost(runs)
            return
        for packed in runs:
            self._handed[packed.endpoint] += packed.rows

    def _read(self, wait: float = 0.0) -> bool:
        """Take in what the sender reported (counts and log lines); False once it said it closed or is gone."""
        conn = self._conn
        if conn is None:
            return False
        try:
            while conn.poll(wait):
                wait = 0.0
                item = conn.recv()
                if item == "closed":
                    return False
                if len(item) == 3:  # a log line: librdkafka's, or the sender's own
                    name, level, text = item
                    (self._librdkafka if name == log_sender.LIBRDKAFKA else log).log(level, "%s", text)
                    continue
                sent, dropped = item
                for endpoint, count in sent.items():
                    self.metrics.sent.labels(endpoint).inc(count)
                    self._handed[endpoint] -= count
                for (endpoint, reason), count in dropped.items():
                    self.metrics.dropped.labels(endpoint, reason).inc(count)
                    self._handed[endpoint] -= count
        except (EOFError, OSError):
            self._lost([])
            return False
        return True

    def _lost(self, runs: list[Packed]) -> None:
        """The sender is gone: what it had not reported, and ``runs``, are undelivered. The next round starts
        another, at most every :data:`RESTART_SECONDS` (a sender that cannot start must not be spawned ten times
        a second)."""
        for packed in runs:
            self._handed[packed.endpoint] += packed.rows
        lost = +self._handed
        for endpoint, count in lost.items():
            self.metrics.dropped.labels(endpoint, "undelivered").inc(count)
        self._handed = Counter()
        if self._sender is not None and self._sender.is_alive():
            self._sender.kill()
        if self._conn is not None:
            self._conn.close()
        self._sender, self._conn = None, None
        if lost:
            log.error("prediction-log sender gone: %d records not delivered", sum(lost.values()))

    def _run(self) -> None:
        # A round every INTERVAL, whatever arrives: under a steady trickle of requests a loop that goes round as soon
        # as there is work would wake for every request and take the interpreter lock from the requests each time.
        while not self._stopping.wait(INTERVAL):
            self._hand(self._packed(self._take()))
            self._read()

    def close(self, timeout: float = 5.0) -> None:
        """Stop taking batches, send what is queued within ``timeout`` seconds (after the sender has started); what
        is left is dropped (counted)."""
        self._stopping.set()
        if self._thread is None:
            return
        self._thread.join(timeout)
        self._hand(self._packed(self._take()))
        if self._conn is not None:
            with contextlib.suppress(OSError, ValueError):  # a sender already gone
                self._conn.send(float(timeout))
            deadline = time.monotonic() + timeout + START_SECONDS
            while self._read(wait=min(0.5, max(deadline - time.monotonic(), 0))) and time.monotonic() < deadline:
                pass
        if self._sender is not None:
            self._sender.join(1.0)
        self._lost([])
