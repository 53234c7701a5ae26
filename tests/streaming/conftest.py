"""Fixtures for the stream scorer tests: a real broker, a real model directory, real scorer processes."""

from __future__ import annotations

import json
import os
import signal
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.serving.conftest import ProcessServer, model_dir
from tests.streaming.broker import Broker

__all__ = ["model_dir"]  # the serving tests' real model directory fixture, shared

# librdkafka's default session (45 s) makes a consumer group take that long to form on Tansu; the tests shorten it.
FAST_GROUP = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A Tansu broker for the module's tests, always stopped."""
    with Broker(tmp_path_factory.mktemp("broker") / "tansu.log") as running:
        yield running


class ScorerProcess(ProcessServer):
    """``python -m streaming`` (the image's consumer entry point) reading from ``broker``."""

    def __init__(self, broker: Broker, model_uri: str, log_path: Path, topics: dict[str, str], **env: str) -> None:
        env = {
            "FRAUD_KAFKA_OPTIONS": json.dumps(FAST_GROUP),
            **{f"FRAUD_{k.upper()}": v for k, v in topics.items()},
            **env,
        }
        super().__init__(
            "streaming", ["--model-uri", model_uri, "--bootstrap-servers", broker.bootstrap], log_path, env
        )

    def metric(self, name: str, **labels: str) -> float:
        """The sum of the samples of ``name`` whose labels include ``labels`` (0 when there is none)."""
        from prometheus_client.parser import text_string_to_metric_families

        text = requests.get(self.url + "/metrics", timeout=5).text
        total = 0.0
        for family in text_string_to_metric_families(text):
            for sample in family.samples:
                if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                    total += sample.value
        return total

    def wait_scored(self, count: int, timeout: float = 90.0) -> None:
        """Wait until the scorer has consumed ``count`` messages (scored or dead-lettered)."""
        self.wait_until(
            lambda: self.metric("fraud_stream_messages_total") >= count, timeout=timeout, what=f"{count} messages"
        )

    def kill(self) -> None:
        """kill -9."""
        if self.process.poll() is None:
            os.kill(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=10)

    def stop(self, timeout: float = 30) -> None:
        super().stop(timeout)


def topics_for(name: str) -> dict[str, Any]:
    """Topic names (and a group) of one test, so tests sharing a broker do not see each other's messages."""
    return {
        "input_topic": f"{name}-in",
        "output_topic": f"{name}-out",
        "dead_letter_topic": f"{name}-dlq",
        "group_id": f"{name}-scorer",
    }
