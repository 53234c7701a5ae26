"""What one look at the labels topic's end costs the stream scorer, side by side in one run, on each broker.

Before every batch of raw transactions the applying scorer asks the broker where the labels topic ends
(``get_watermark_offsets(cached=False)``, :class:`streaming.transactions.LabelFeed`). Two ways to ask, alternated
``--rounds`` times on the same topic:

* **on the consumer's connection**: the labels consumer itself, assigned the topic, as the scorer asked before.
  Its connection holds a fetch that the broker keeps up to ``fetch.wait.max.ms`` (the scorer's 10 ms) while no label
  arrives, and a broker answers one connection's requests in order, so the question waits behind it.
* **on a client of its own**: a consumer assigned nothing, as the scorer asks now.

Brokers: Tansu (the tests' broker) and Apache Kafka 0.9.0.1 when ``make kafka`` installed it.

    .venv/bin/python benchmarks/bench_label_ends.py [--asks 50] [--rounds 4]
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from tests.streaming.apache_kafka import ApacheKafka  # noqa: E402
from tests.streaming.broker import Broker  # noqa: E402

TOPIC = "labels"


def per_ask(client: Any, asks: int) -> float:
    """Milliseconds per ``get_watermark_offsets(cached=False)`` of the labels topic, over ``asks`` asks."""
    from confluent_kafka import TopicPartition

    started = time.perf_counter()
    for _ in range(asks):
        client.get_watermark_offsets(TopicPartition(TOPIC, 0), timeout=30, cached=False)
    return (time.perf_counter() - started) / asks * 1e3


def compare(broker: Any, asks: int, rounds: int) -> tuple[list[float], list[float]]:
    """The two ways, alternated: ms per ask on the assigned consumer's connection, and on a client of its own."""
    from confluent_kafka import Consumer, TopicPartition

    broker.create_topics(TOPIC, partitions=1)
    config = broker.config(**{"group.id": "labels", "enable.auto.commit": False, "fetch.wait.max.ms": 10})
    consumer, own = Consumer(config), Consumer(config)
    try:
        consumer.assign([TopicPartition(TOPIC, 0, 0)])
        consumer.consume(1, 0.5)  # its fetches are under way, as in a running scorer
        shared, separate = [], []
        for number in range(rounds):
            pair = [(shared, consumer), (separate, own)]
            for found, client in pair if number % 2 == 0 else pair[::-1]:
                found.append(per_ask(client, asks))
        return shared, separate
    finally:
        consumer.close()
        own.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--asks", type=int, default=50, help="asks a round, each way")
    parser.add_argument("--rounds", type=int, default=4, help="rounds, the order reversed every other round")
    args = parser.parse_args()
    if args.asks < 1 or args.rounds < 1:
        parser.error("--asks and --rounds must be at least 1")
    work = Path(tempfile.mkdtemp(prefix="bench-label-ends-"))
    lines = [
        "| broker | on the consumer's connection, ms an ask | on a client of its own, ms an ask | ratio |",
        "| --- | ---: | ---: | ---: |",
    ]
    for name in ("tansu", "kafka"):
        try:
            broker = ApacheKafka(work / "kafka.log") if name == "kafka" else Broker(work / "tansu.log")
        except FileNotFoundError as missing:
            lines.append(f"| {name} | not run: {missing} | | |")
            continue
        with broker:
            shared, separate = compare(broker, args.asks, args.rounds)
        middle, alone = statistics.median(shared), statistics.median(separate)
        lines.append(
            f"| {name} | {middle:.2f} ({min(shared):.2f}–{max(shared):.2f}) "
            f"| {alone:.2f} ({min(separate):.2f}–{max(separate):.2f}) | {middle / alone:.0f}x |"
        )
    print(f"Medians of {args.rounds} rounds of {args.asks} asks each way (range in brackets):\n")
    print("\n".join(lines))


if __name__ == "__main__":
    main()
