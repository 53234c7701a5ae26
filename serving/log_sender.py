"""The prediction log's sender process: it encodes the records and hands them to Kafka, outside the server's
interpreter lock.

KServe does the same with its InferenceLogger, which runs in the agent beside the model server, not in it. Here the
model server (or the stream scorer) starts this process with :func:`start`; its log's thread sends it, once a
round, a list of :class:`serving.log_records.Packed` runs through a pipe. :func:`serve`, the process's main:

* encodes each run (:func:`serving.log_records.encode_run`) and hands each message to confluent-kafka's
  ``Producer.produce``; librdkafka's queue is bounded, and a full one (``BufferError``) drops the record, counted;
* serves librdkafka's reports (``poll``): each message delivered (counted as sent) or failed (counted as
  undelivered, for example no broker within the message timeout);
* sends the counts back up the pipe as they change, as ``(sent, dropped)`` deltas, and its log lines (librdkafka's
  and its own) as ``(logger, level, text)``; the parent turns them into its Prometheus counters and log lines;
* on a number (the parent closes the log: the seconds it may take), or when the pipe ends (the parent died: a
  second), sends what it can within that time, counts the rest as undelivered, sends the last counts and exits.
"""

from __future__ import annotations

import contextlib
import functools
import logging
import multiprocessing
import os
from collections import Counter
from multiprocessing.connection import Connection
from multiprocessing.process import BaseProcess
from typing import Any

from serving.log_records import Packed, Source, encode_run

NICE = 10
"""The sender runs this much nicer than the server: where they share CPUs, the requests come first. The queues
stay bounded either way: a sender starved of CPU for long drops records, counted, and never slows a request."""


def start(config: dict[str, Any], topic: str, where: Source, interval: float) -> tuple[BaseProcess, Connection]:
    """Start the sender process (``spawn``: a fresh interpreter, no threads inherited); the process and the
    parent's end of the pipe."""
    context = multiprocessing.get_context("spawn")
    parent, child = context.Pipe()
    process = context.Process(
        target=serve, args=(child, config, topic, where, interval), name="prediction-log-sender", daemon=True
    )
    process.start()
    child.close()
    return process, parent


LIBRDKAFKA = "librdkafka"
"""The sender's logger for librdkafka's lines; the parent logs them under its own librdkafka logger."""


class _PipeHandler(logging.Handler):
    """The sender's log lines (librdkafka's and its own), up the pipe as ``(logger, level, text)``, for the parent
    to log in its own format."""

    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self.conn = conn

    def emit(self, record: logging.LogRecord) -> None:
        with contextlib.suppress(OSError, ValueError):  # the parent is gone: nothing to tell
            self.conn.send((record.name, record.levelno, record.getMessage()))


class _Tally:
    """The counts since the last report."""

    def __init__(self) -> None:
        self.sent: Counter[str] = Counter()
        self.dropped: Counter[tuple[str, str]] = Counter()

    def delivered(self, endpoint: str, error: Any, message: Any) -> None:
        """librdkafka's report on one message of ``endpoint``."""
        if error is None:
            self.sent[endpoint] += 1
        else:
            self.dropped[endpoint, "undelivered"] += 1

    def report(self, conn: Connection) -> None:
        """Send the counts up the pipe, if any, and start again from zero."""
        if self.sent or self.dropped:
            conn.send((dict(self.sent), dict(self.dropped)))
            self.sent, self.dropped = Counter(), Counter()


def _produce(producer: Any, topic: str, runs: list[Packed], where: Source, tally: _Tally) -> None:
    for packed in runs:
        endpoint = packed.endpoint
        try:
            found = encode_run(packed, where)
        except Exception as error:  # a run that cannot be encoded is dropped, counted; the others go on
            logging.getLogger(__name__).error("prediction-log records not encoded: %s", error)
            tally.dropped[endpoint, "unencodable"] += packed.rows
            continue
        report = functools.partial(tally.delivered, endpoint)
        for key, value, headers in found:
            try:
                producer.produce(topic, value, key, headers=headers, on_delivery=report)
            except BufferError:
                tally.dropped[endpoint, "producer_full"] += 1
            except Exception as error:  # e.g. larger than the broker takes
                tally.dropped[endpoint, "unencodable"] += 1
                logging.getLogger(__name__).error("prediction-log record refused by the producer: %s", error)


def serve(conn: Connection, config: dict[str, Any], topic: str, where: Source, interval: float) -> None:
    """The sender's main (see the module): until a number comes or the pipe ends, then a last flush and report."""
    from confluent_kafka import Producer

    os.nice(NICE)
    for name in (LIBRDKAFKA, __name__):
        logger = logging.getLogger(name)
        logger.addHandler(_PipeHandler(conn))
        logger.setLevel(logging.INFO)
        logger.propagate = False
    librdkafka = logging.getLogger(LIBRDKAFKA)
    producer = Producer({**config, "logger": librdkafka})
    tally = _Tally()
    timeout = 1.0
    while True:
        try:
            if conn.poll(interval):
                runs = conn.recv()
                if isinstance(runs, float):  # the log closes: flush within this many seconds
                    timeout = runs
                    break
                _produce(producer, topic, runs, where, tally)
        except (EOFError, OSError):  # the parent died: send what can be sent in a second, then go
            break
        producer.poll(0)
        tally.report(conn)
    left = producer.flush(timeout)
    if left:  # purged messages are reported as failed deliveries: counted as undelivered
        producer.purge()
        producer.flush(0)
    try:
        tally.report(conn)
        conn.send("closed")
    except (OSError, ValueError):
        pass
