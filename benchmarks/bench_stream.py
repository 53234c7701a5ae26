"""Stream scoring speed through a real broker on 127.0.0.1, beside that broker's own floor, in one run: on Apache Kafka,
then on Tansu.

* **floor**: the broker alone: N pre-encoded transactions produced while a reader consumes them from another topic
  (produce → consume, no scoring).
* **end to end**: the same N transactions produced to the scorer's input topic while a reader consumes the results
  topic: ``python -m streaming`` (one process, the image's entry point) decodes, validates, scores and writes one
  result per transaction, committing after delivery. Throughput = N / (first produce → last result read).
* **scorer CPU**: the scorer process's CPU time (user + system) over the end-to-end run, per transaction: what
  one core of scorer costs, whatever else runs on the machine.
* **latency**: transactions produced at a fixed rate; each result's arrival time minus its send time (p50/p99).
* **over the run**: the fixed-rate runs' p50/p99 by the second in which each transaction was sent, floor and end to
  end side by side: on Tansu both grow as the run goes on (docs/streaming.md, "The broker's own growth").
* **targets** (issue 26), each printed as holding or not against the same broker's floor: end-to-end p99 at the
  fixed rate at most 2x the floor's, p50 at most 2x the floor's plus 5 ms, throughput at least 0.25x the floor's.
* **brokers**: Apache Kafka 0.9.0.1 (``make kafka``; a fetch finds its offset through an index and is answered as
  soon as data arrive) and Tansu 0.6.0 in memory (the tests' broker; a fetch lists every batch the partition
  holds). ``--broker kafka`` or ``--broker tansu`` runs one.
* ``--broker-growth N`` (on Tansu, whatever ``--broker`` says): the broker alone, why its latency grows: the
  floor at the fixed rate on a fresh topic, then after N one-message produce requests (each stored as its own
  batch) to another topic, then to the floor's own.

    .venv/bin/python benchmarks/bench_stream.py [--rows 200000] [--rate 5000] [--seconds 10] [--set NAME=VALUE]
    .venv/bin/python benchmarks/bench_stream.py --broker-growth 10000
    .venv/bin/python benchmarks/bench_stream.py --broker tansu --results-partitions 1

``--results-partitions 1`` puts the scorer's results on one partition (the input keeps 3): Tansu then stores a third
as many result batches, and the end-to-end tail shrinks with them (docs/streaming.md, "The broker's own growth").

``--set batches_in_flight=1`` (any scorer setting, repeatable) runs the scorer with that setting, to compare.

Prints a Markdown table per broker; ``--write-doc`` puts them into docs/streaming.md (the README quotes them).
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import threading
import time
from pathlib import Path
from typing import Any

import numpy as np
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fraud_detection import synth  # noqa: E402
from fraud_detection.schema import FEATURES  # noqa: E402
from streaming.consumer import take  # noqa: E402
from streaming.produce import encode_transaction  # noqa: E402
from tests.conftest import free_port, stop_process  # noqa: E402
from tests.serving.conftest import make_model_dir  # noqa: E402
from tests.streaming.apache_kafka import VERSION as KAFKA_VERSION  # noqa: E402
from tests.streaming.apache_kafka import ApacheKafka  # noqa: E402
from tests.streaming.broker import Broker  # noqa: E402

PARTITIONS = 3
DOC = REPO / "docs" / "streaming.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
FAST_GROUP = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}
BROKERS = {"kafka": f"Apache Kafka {KAFKA_VERSION}", "tansu": "Tansu 0.6.0, in memory"}
"""The brokers ``--broker`` chooses from, in the order ``both`` runs them, and how the tables name them."""


class Reader(threading.Thread):
    """Consumes every partition of ``topic`` (no group) from its end as the reader starts, and notes each key's
    arrival time.

    Starting at the end matters: a reader starting at the beginning first wades through every earlier run's
    messages (200,000 results of the throughput run), and the first second of a timed run then measures that
    catching up, not the broker or the scorer (docs/streaming.md, "Where the second went").
    """

    def __init__(self, config: dict[str, Any], topic: str, prefix: bytes, expected: int, timeout: float) -> None:
        super().__init__(daemon=True)
        from confluent_kafka import Consumer, TopicPartition

        self.consumer = Consumer(
            {**config, "group.id": "bench-reader", "enable.auto.commit": False, "fetch.wait.max.ms": 10}
        )
        partitions = self.consumer.list_topics(topic, timeout=10).topics[topic].partitions
        # A high watermark that lags the log only makes the reader skip fewer old messages (the prefix filters them).
        ends = [self.consumer.get_watermark_offsets(TopicPartition(topic, p), timeout=10)[1] for p in partitions]
        self.consumer.assign([TopicPartition(topic, p, end) for p, end in zip(partitions, ends, strict=True)])
        self.prefix, self.expected, self.timeout = prefix, expected, timeout
        self.arrivals: dict[bytes, float] = {}

    def run(self) -> None:
        deadline = time.monotonic() + self.timeout
        try:
            while len(self.arrivals) < self.expected and time.monotonic() < deadline:
                # What has arrived, at once: consume(5000, 0.005) would hold each message up to 5 ms for more.
                batch = take(self.consumer, 5000, 0.005)
                now = time.perf_counter()
                for message in batch:
                    key = message.key()
                    if message.error() is None and key is not None and key.startswith(self.prefix):
                        self.arrivals.setdefault(key, now)
        finally:
            self.consumer.close()


def produce(config: dict[str, Any], topic: str, items: list[tuple[bytes, bytes]], rate: float = 0.0) -> list[float]:
    """Produce every item (at ``rate``/s when > 0); returns each one's send time."""
    from confluent_kafka import Producer

    producer = Producer({**config, "linger.ms": 5, "queue.buffering.max.messages": 2_000_000})
    sent: list[float] = []
    started = time.perf_counter()
    for i, (key, value) in enumerate(items):
        if rate > 0:
            pause = started + i / rate - time.perf_counter()
            if pause > 0:
                producer.poll(0)
                time.sleep(pause)
        while True:
            try:
                producer.produce(topic, value, key)
                break
            except BufferError:
                producer.poll(0.01)
        sent.append(time.perf_counter())
        if i % 2000 == 0:
            producer.poll(0)
    assert producer.flush(60) == 0, "the broker did not take every message"
    return sent


def metric(url: str, name: str) -> float:
    """The sum of every sample of ``name`` on a server's ``/metrics`` (``url``: its ``http://host:port``)."""
    import requests
    from prometheus_client.parser import text_string_to_metric_families

    text = requests.get(url + "/metrics", timeout=10).text
    return sum(s.value for f in text_string_to_metric_families(text) for s in f.samples if s.name == name)


def _items(rows: int, prefix: str, values: list[bytes]) -> list[tuple[bytes, bytes]]:
    return [(f"{prefix}-{i}".encode(), values[i % len(values)]) for i in range(rows)]


def timed(
    broker: Broker | ApacheKafka,
    source: str,
    sink: str,
    items: list[tuple[bytes, bytes]],
    rate: float = 0.0,
    result_keys: list[bytes] | None = None,
) -> Any:
    """Produce ``items`` to ``source`` and read their results from ``sink``: (throughput, each one's latency).

    A result is found by its key: the item's own key, or ``result_keys[i]`` when results are keyed otherwise (raw
    transactions are keyed by their entity, their results by the transaction id). All keys share one prefix.
    """
    keys = result_keys or [key for key, _ in items]
    prefix = keys[0].split(b"-")[0] + b"-"
    reader = Reader(broker.config(), sink, prefix, len(items), timeout=600)
    reader.start()
    sent = produce(broker.config(), source, items, rate)
    reader.join()
    missing = len(items) - len(reader.arrivals)
    if missing:
        raise RuntimeError(f"{missing} of {len(items)} messages never arrived on {sink}")
    last = max(reader.arrivals.values())
    latencies = np.array([reader.arrivals[key] - t for key, t in zip(keys, sent, strict=True)])
    return len(items) / (last - sent[0]), latencies


def _floor(
    broker: Broker | ApacheKafka, items: list[tuple[bytes, bytes]], fixed: list[tuple[bytes, bytes]], rate: float
) -> Any:
    """Broker alone, produce → consume of the same messages on one topic: as fast as it goes, then at ``rate``."""
    broker.create_topics("floor", partitions=PARTITIONS)
    throughput, _ = timed(broker, "floor", "floor", items)
    _, latencies = timed(broker, "floor", "floor", fixed, rate=rate)
    return float(throughput), latencies


def over_the_run(rate: float, floor: np.ndarray, end_to_end: np.ndarray, step: float = 2.0) -> list[str]:
    """p50/p99 of both fixed-rate runs by when each transaction was sent (``step`` seconds a row), as Markdown."""
    lines = [
        "| sent in second | floor p50 / p99 ms | end to end p50 / p99 ms |",
        "| --- | ---: | ---: |",
    ]
    per_step = int(rate * step)
    for start in range(0, min(len(floor), len(end_to_end)), per_step):
        cells = [
            "{:.1f} / {:.1f}".format(*np.percentile(run[start : start + per_step] * 1000, [50, 99]))
            for run in (floor, end_to_end)
        ]
        lines.append(f"| {start / rate:.0f}–{(start + per_step) / rate:.0f} | {cells[0]} | {cells[1]} |")
    return lines


def broker_growth(values: list[bytes], rate: float, seconds: float, batches: int) -> str:
    """The floor at ``rate`` on a fresh topic, after ``batches`` one-message produce requests to another topic, and
    after as many to its own topic (three brokers, one a run), as Markdown."""
    from confluent_kafka import Producer

    rows = []
    for where in ("none", "another topic", "the same topic"):
        with (
            tempfile.TemporaryDirectory(prefix="bench-stream-growth-") as scratch,
            Broker(Path(scratch) / "tansu.log") as broker,
        ):
            broker.create_topics("floor", "other", partitions=PARTITIONS)
            if where != "none":
                producer = Producer(broker.config(**{"linger.ms": 0}))
                topic = "other" if where == "another topic" else "floor"
                for i in range(batches):
                    producer.produce(topic, values[i % len(values)], f"b-{i}".encode())
                    producer.flush(10)  # one request, one stored batch, each
            _, latencies = timed(broker, "floor", "floor", _items(int(rate * seconds), "g", values), rate=rate)
        p50, p99 = np.percentile(latencies * 1000, [50, 99])
        label = "none" if where == "none" else f"{batches:,} on {where}"
        rows.append(f"| {label} | {p50:.1f} | {p99:.1f} |")
    return "\n".join(
        [
            f"The broker alone at a fixed {rate:,.0f}/s for {seconds:.0f} s, {PARTITIONS} partitions, after "
            "one-message batches stored beforehand:",
            "",
            "| batches stored before | floor p50 ms | floor p99 ms |",
            "| --- | ---: | ---: |",
            *rows,
        ]
    )


def targets(floor: float, end_to_end: float, floor_ms: tuple[float, float], ms: tuple[float, float]) -> list[str]:
    """The issue-26 targets against the floor of the same run, one Markdown list line each, saying if it holds."""
    checks = [
        ("end-to-end p99 ≤ 2 × floor p99", ms[1], 2 * floor_ms[1], " ms"),
        ("end-to-end p50 ≤ 2 × floor p50 + 5 ms", ms[0], 2 * floor_ms[0] + 5, " ms"),
    ]
    lines = [
        f"- {name}: {value:.1f}{unit} ≤ {bound:.1f}{unit}: **{'holds' if value <= bound else 'missed'}**"
        for name, value, bound, unit in checks
    ]
    bound = 0.25 * floor
    verdict = "holds" if end_to_end >= bound else "missed"
    lines.append(f"- end-to-end throughput ≥ 0.25 × floor: {end_to_end:,.0f}/s ≥ {bound:,.0f}/s: **{verdict}**")
    return lines


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=200_000, help="transactions for the throughput runs")
    parser.add_argument("--rate", type=float, default=5_000, help="fixed rate of the latency run (per second)")
    parser.add_argument("--seconds", type=float, default=10.0, help="length of the latency run")
    parser.add_argument(
        "--broker", choices=("both", *BROKERS), default="both", help="the broker(s) to run on (default: both)"
    )
    parser.add_argument(
        "--set",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="a scorer setting (StreamSettings field), e.g. batches_in_flight=1; repeatable",
    )
    parser.add_argument("--write-doc", action="store_true", help="put the tables into docs/streaming.md")
    parser.add_argument(
        "--broker-growth",
        type=int,
        default=0,
        metavar="N",
        help="only show how Tansu's latency grows with the batches a topic holds (N one-message batches)",
    )
    parser.add_argument(
        "--results-partitions",
        type=int,
        default=PARTITIONS,
        metavar="N",
        help=f"partitions of the scorer's results topic (default {PARTITIONS}, as the input's)",
    )
    args = parser.parse_args()
    if args.results_partitions < 1:
        parser.error(f"--results-partitions must be at least 1, not {args.results_partitions}")

    frame = synth.generate(synth.SyntheticConfig(n_rows=20_000, seed=7))
    values = [
        encode_transaction(dict(zip(FEATURES, map(float, row), strict=True)))
        for row in frame[list(FEATURES)].to_numpy()
    ]
    if args.broker_growth:
        print(broker_growth(values, args.rate, args.seconds, args.broker_growth))
        return
    tables = []
    for name in BROKERS if args.broker == "both" else (args.broker,):
        table = on_broker(name, args, values)
        print(table, end="\n\n", flush=True)
        tables.append(table)
    if args.write_doc:
        text = DOC.read_text()
        head, rest = text.split(START, 1)
        _, tail = rest.split(END, 1)
        joined = "\n\n".join(tables)
        DOC.write_text(f"{head}{START}\n{joined}\n{END}{tail}")
        print(f"written to {DOC.relative_to(REPO)}")


def on_broker(name: str, args: argparse.Namespace, values: list[bytes]) -> str:
    """The floor, then the scorer end to end, on a fresh broker ``name`` (a key of ``BROKERS``): a Markdown table."""
    with tempfile.TemporaryDirectory(prefix="bench-stream-") as scratch:
        work = Path(scratch)
        model = make_model_dir(work / "model")
        broker = ApacheKafka(work / "kafka.log") if name == "kafka" else Broker(work / "tansu.log")
        with broker:
            n_fixed = int(args.rate * args.seconds)
            floor, floor_latencies = _floor(
                broker, _items(args.rows, "f", values), _items(n_fixed, "g", values), args.rate
            )
            broker.create_topics("in", "dlq", partitions=PARTITIONS)
            broker.create_topics("out", partitions=args.results_partitions)
            metrics_port = free_port()
            env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
            env.update(
                {
                    "FRAUD_MODEL_URI": str(model),
                    "FRAUD_BOOTSTRAP_SERVERS": broker.bootstrap,
                    "FRAUD_INPUT_TOPIC": "in",
                    "FRAUD_OUTPUT_TOPIC": "out",
                    "FRAUD_DEAD_LETTER_TOPIC": "dlq",
                    "FRAUD_HOST": "127.0.0.1",
                    "FRAUD_PORT": str(metrics_port),
                    "FRAUD_KAFKA_OPTIONS": json.dumps({**FAST_GROUP, **broker.client_options}),
                    **{f"FRAUD_{key.upper()}": value for key, value in (item.split("=", 1) for item in args.set)},
                }
            )
            log = (work / "scorer.log").open("w")
            scorer = subprocess.Popen(
                [sys.executable, "-m", "streaming"], cwd=REPO, env=env, stdout=log, stderr=subprocess.STDOUT
            )
            try:
                # Warm up: the group forms and the first result comes back before anything is timed.
                timed(broker, "in", "out", _items(100, "w", values))
                cpu = psutil.Process(scorer.pid)
                before = sum(cpu.cpu_times()[:2])
                end_to_end, _ = timed(broker, "in", "out", _items(args.rows, "e", values))
                cpu_per_row = (sum(cpu.cpu_times()[:2]) - before) / args.rows
                _, latencies = timed(broker, "in", "out", _items(n_fixed, "l", values), rate=args.rate)
            finally:
                stop_process(scorer, timeout=30)
                log.close()
    p50, p99 = np.percentile(latencies * 1000, [50, 99])
    floor_p50, floor_p99 = np.percentile(floor_latencies * 1000, [50, 99])
    fixed = f"at a fixed {args.rate:,.0f}/s for {args.seconds:.0f} s"
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    results = "" if args.results_partitions == PARTITIONS else f" ({args.results_partitions} for the results)"
    settings = f" ({', '.join(args.set)})" if args.set else ""
    return "\n".join(
        [
            f"**{BROKERS[name]}.** {os.cpu_count()} CPUs (load average {load} at the end), {args.rows:,} "
            f"transactions, {PARTITIONS} partitions{results}, one scorer process{settings}:",
            "",
            "| run | transactions/s | p50 ms | p99 ms |",
            "| --- | ---: | ---: | ---: |",
            f"| broker floor: produce → consume, no scoring | {floor:,.0f} | | |",
            f"| end to end: produce → score → result | {end_to_end:,.0f} | | |",
            f"| the scorer's own CPU time per transaction: {cpu_per_row * 1e6:.1f} µs "
            f"(= transactions per CPU-second of the scorer) | {1 / cpu_per_row:,.0f} | | |",
            f"| broker floor {fixed} | {args.rate:,.0f} | {floor_p50:.1f} | {floor_p99:.1f} |",
            f"| end to end {fixed} | {args.rate:,.0f} | {p50:.1f} | {p99:.1f} |",
            "",
            f"End to end / broker floor = **{end_to_end / floor:.2f}**.",
            "",
            *targets(floor, end_to_end, (floor_p50, floor_p99), (p50, p99)),
            "",
            "Over the run:",
            "",
            *over_the_run(args.rate, floor_latencies, latencies),
        ]
    )


if __name__ == "__main__":
    main()
