"""The stream scorer's own Prometheus metrics, beside the scoring metrics it shares with the server."""

from __future__ import annotations

import functools
import json
from dataclasses import dataclass
from typing import TYPE_CHECKING

from serving import telemetry

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge, Histogram


@dataclass(frozen=True)
class StreamMetrics:
    """The consumer's own metrics, beside the scoring metrics it shares with the server."""

    messages: Counter
    dead_letters: Counter
    batch_seconds: Histogram
    latency_seconds: Histogram
    lag: Gauge
    labels: Counter
    writer_wait_seconds: Histogram
    writer_timeouts: Counter
    stale_features: Counter


@functools.cache
def stream_metrics() -> StreamMetrics:
    """The process's stream metrics, registered on first use."""
    from prometheus_client import Counter, Gauge, Histogram

    return StreamMetrics(
        messages=Counter("fraud_stream_messages", "Messages consumed, by outcome (scored, dead_letter)", ["outcome"]),
        dead_letters=Counter("fraud_stream_dead_letters", "Messages sent to the dead-letter topic", ["reason"]),
        batch_seconds=Histogram(
            "fraud_stream_batch_seconds", "Time to score and deliver one batch", buckets=telemetry.LATENCY_BUCKETS
        ),
        latency_seconds=Histogram(
            "fraud_stream_latency_seconds",
            "End-to-end latency: message timestamp to its result acknowledged by the broker",
            buckets=telemetry.LATENCY_BUCKETS,
        ),
        lag=Gauge("fraud_stream_consumer_lag", "Messages not yet consumed, per partition", ["topic", "partition"]),
        labels=Counter(
            "fraud_stream_labels", "Label messages consumed (raw-transaction models), by outcome", ["outcome"]
        ),
        writer_wait_seconds=Histogram(
            "fraud_stream_writer_wait_seconds",
            "A scorer's wait, before a batch, for the stream's writer to apply it (wait_for_writer)",
            buckets=telemetry.LATENCY_BUCKETS,
        ),
        writer_timeouts=Counter(
            "fraud_stream_writer_timeouts", "Batches a scorer gave up on: the writer did not apply them in time"
        ),
        stale_features=Counter(
            "fraud_stream_stale_features",
            "Transactions a scorer that only reads scored more than the store's grace behind its latest event",
        ),
    )


def on_stats(payload: str) -> None:
    """librdkafka's statistics (every few seconds): the consumer lag of each assigned partition."""
    lag = stream_metrics().lag
    try:
        stats = json.loads(payload)
    except json.JSONDecodeError:
        return
    for topic, info in stats.get("topics", {}).items():
        for partition, numbers in info.get("partitions", {}).items():
            value = numbers.get("consumer_lag", -1)
            if partition != "-1" and value >= 0:
                lag.labels(topic, partition).set(value)
