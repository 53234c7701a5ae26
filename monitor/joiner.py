"""The label joiner: records and late labels into the join store, live metrics on /metrics.

Prediction records and labels come from Kafka (or labels from a file); the metrics of
:mod:`monitor.metrics` are served on ``/metrics``.

    python -m monitor.joiner run --db .fraud/monitor/join.sqlite --bootstrap-servers 127.0.0.1:9092
    python -m monitor.joiner import-labels --db .fraud/monitor/join.sqlite labels.csv

``run`` consumes both topics (when ``--bootstrap-servers`` is given; without it, it only serves the metrics of
the store, fed by ``import-labels`` and by other joiners) and recomputes the metrics every
``--refresh-seconds``. Offsets are committed only after the batch is in the store: a crash replays messages,
and the store's order-free upserts make a replay change nothing. Every option is also a ``FRAUD_*`` variable
(:class:`monitor.settings.JoinerSettings`); ``/metrics`` binds 127.0.0.1 unless ``--metrics-host`` says otherwise.
"""

from __future__ import annotations

import argparse
import logging
import threading
import time
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

from prometheus_client import CollectorRegistry, Counter, start_http_server

from fraud_detection.monitoring import join, labels, records, reference, shift
from monitor.metrics import SnapshotCollector, take
from monitor.options import add_options, build
from monitor.settings import JoinerSettings

log = logging.getLogger("monitor.joiner")


class Joiner:
    """The store, the collector and the counters of one joiner process."""

    def __init__(self, settings: JoinerSettings, registry: CollectorRegistry) -> None:
        self.settings = settings
        self.store = join.JoinStore(settings.db)
        self.collector = SnapshotCollector()
        registry.register(self.collector)
        self.consumed = Counter(
            "fraud_joiner_messages_total", "messages stored, by topic kind", ["kind"], registry=registry
        )
        self.rejected = Counter("fraud_joiner_rejected_total", "messages refused, by kind", ["kind"], registry=registry)
        self.reference: shift.Reference | None = None
        self.reference_read_at: datetime | None = None
        self.load_reference()

    def load_reference(self, now: datetime | None = None) -> None:
        """Read the training reference: the override file, else the model's recorded one (``reference_uri``),
        again every ``reference_refresh_minutes``. A failed re-read keeps the reference read before (logged); a
        failed first read raises :class:`~fraud_detection.monitoring.reference.ReferenceError`."""
        moment = now or datetime.now(UTC)
        if self.settings.reference is not None:
            if self.reference is None:
                self.reference = reference.from_file(self.settings.reference)
            return
        if not self.settings.reference_uri:
            return
        due = timedelta(minutes=self.settings.reference_refresh_minutes)
        if self.reference_read_at is not None and moment - self.reference_read_at < due:
            return
        try:
            self.reference = reference.load(self.settings.reference_uri, self.settings.tracking_uri)
        except Exception as error:  # MLflow or storage down: skew keeps its last baseline
            if self.reference is None:
                raise reference.ReferenceError(f"{self.settings.reference_uri}: {error}") from error
            log.warning("kept the reference read at %s: %s", self.reference_read_at, error)
        self.reference_read_at = moment

    def refresh(self, now: datetime | None = None) -> None:
        """Recompute the metrics at ``now`` (the wall clock by default) and publish them; forget what no window
        will read again (older than the matured cohort, with a day's slack)."""
        moment = now or datetime.now(UTC)
        self.load_reference(moment)
        windows = self.settings.windows()
        self.store.prune(moment - windows.maturity - windows.cohort - timedelta(days=1))
        snapshot = take(
            self.store,
            moment,
            windows,
            self.reference,
            default_threshold=self.settings.shift_threshold,
            resamples=self.settings.resamples,
        )
        self.collector.publish(snapshot)

    def store_batch(self, messages: Sequence[Any]) -> None:
        """Decode a batch of Kafka messages of both topics and store it (bad ones are counted and logged)."""
        found_records, found_labels = [], []
        for message in messages:
            if message.error() is not None:
                continue
            try:
                if message.topic() == self.settings.labels_topic:
                    found_labels.append(labels.decode(message.key(), message.value()))
                else:
                    found_records.append(records.decode(message.key(), message.value(), message.headers()))
            except (labels.LabelError, records.RecordError) as error:
                kind = "label" if message.topic() == self.settings.labels_topic else "record"
                self.rejected.labels(kind).inc()
                log.warning(
                    "refused a %s at %s/%d/%d: %s", kind, message.topic(), message.partition(), message.offset(), error
                )
        self.consumed.labels("record").inc(self.store.add_records(found_records))
        self.consumed.labels("label").inc(self.store.add_labels(found_labels))

    def consume(self, stop: threading.Event) -> None:
        """Consume both topics until ``stop``, refreshing the metrics every ``refresh_seconds``."""
        from confluent_kafka import Consumer

        consumer = Consumer(
            {
                "bootstrap.servers": self.settings.bootstrap_servers,
                "group.id": self.settings.group_id,
                "enable.auto.commit": False,
                "auto.offset.reset": "earliest",
                "session.timeout.ms": round(self.settings.session_timeout_seconds * 1000),
                "logger": logging.getLogger("monitor.librdkafka"),
            }
        )
        consumer.subscribe([self.settings.records_topic, self.settings.labels_topic])
        next_refresh = 0.0
        try:
            while not stop.is_set():
                batch = consumer.consume(1000, 0.5)
                if batch:
                    self.store_batch(batch)
                    consumer.commit(asynchronous=False)
                if time.monotonic() >= next_refresh:
                    self.refresh()
                    next_refresh = time.monotonic() + self.settings.refresh_seconds
        finally:
            consumer.close()

    def serve_store(self, stop: threading.Event) -> None:
        """No broker: refresh the metrics of the store (fed by imports) until ``stop``."""
        while not stop.is_set():
            self.refresh()
            stop.wait(self.settings.refresh_seconds)


def import_labels(db: Path, paths: Sequence[Path], batch: int = 10_000) -> int:
    """Store the labels of CSV or JSON-lines files, ``batch`` at a time; returns how many were read."""
    store = join.JoinStore(db)
    total = 0
    try:
        for path in paths:
            pending: list[labels.Label] = []
            for label in labels.read_file(path):
                pending.append(label)
                if len(pending) >= batch:
                    total += store.add_labels(pending)
                    pending = []
            total += store.add_labels(pending)
    finally:
        store.close()
    return total


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m monitor.joiner", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    run = commands.add_parser("run", help="consume records and labels, serve the live metrics")
    add_options(run, JoinerSettings)
    imports = commands.add_parser("import-labels", help="store the labels of CSV or JSON-lines files")
    add_options(imports, JoinerSettings, ["db"])
    imports.add_argument("files", type=Path, nargs="+")
    return parser


def serve(settings: JoinerSettings) -> int:
    """Run the joiner until SIGTERM or Ctrl-C: consume both topics (or only refresh the store's metrics without
    ``bootstrap_servers``) and serve ``/metrics``."""
    import signal

    registry = CollectorRegistry()
    joiner = Joiner(settings, registry)
    server, thread = start_http_server(settings.metrics_port, settings.metrics_host, registry=registry)
    log.info("metrics on http://%s:%d/metrics", settings.metrics_host, server.server_port)
    stop = threading.Event()
    signal.signal(signal.SIGTERM, lambda *_: stop.set())
    try:
        if settings.bootstrap_servers:
            joiner.consume(stop)
        else:
            joiner.serve_store(stop)
    except KeyboardInterrupt:
        pass
    finally:
        server.shutdown()
        thread.join(timeout=5)
        joiner.store.close()
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m monitor.joiner`` (``fraud monitor joiner`` and ``import-labels`` wrap it)."""
    parser = _parser()
    arguments = parser.parse_args(argv)
    settings = build(JoinerSettings, arguments, parser)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    if arguments.command == "import-labels":
        count = import_labels(settings.db, arguments.files)
        print(f"stored {count} labels in {settings.db}")
        return 0
    return serve(settings)


if __name__ == "__main__":
    raise SystemExit(main())
