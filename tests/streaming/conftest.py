"""Fixtures for the stream scorer tests: a real broker, a real model directory, real scorer processes."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import free_port, stop_process
from tests.serving.conftest import REPO, PolledServer, model_dir
from tests.streaming.broker import Broker

__all__ = ["model_dir"]  # the serving tests' real model directory fixture, shared

# librdkafka's default session (45 s) makes a consumer group take that long to form on Tansu; the tests shorten it.
FAST_GROUP = {"session.timeout.ms": "6000", "heartbeat.interval.ms": "500"}


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    """A Tansu broker for the module's tests, always stopped."""
    with Broker(tmp_path_factory.mktemp("broker") / "tansu.log") as running:
        yield running


class ScorerProcess(PolledServer):
    """``python -m streaming`` (the image's consumer entry point) on 127.0.0.1; stdout (JSON logs) to a file."""

    def __init__(self, broker: Broker, model_uri: str, log_path: Path, topics: dict[str, str], **env: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
        full_env.update(
            {
                "PYTHONUNBUFFERED": "1",
                "FRAUD_LOAD_RETRY_SECONDS": "1",
                "FRAUD_KAFKA_OPTIONS": json.dumps(FAST_GROUP),
                **{f"FRAUD_{k.upper()}": v for k, v in topics.items()},
                **env,
            }
        )
        command = [sys.executable, "-m", "streaming", "--host", "127.0.0.1", "--port", str(self.port)]
        command += ["--model-uri", model_uri, "--bootstrap-servers", broker.bootstrap]
        self._log = log_path.open("a")
        self.process = subprocess.Popen(command, cwd=REPO, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)

    def exited(self) -> str:
        code = self.process.poll()
        return "" if code is None else f"scorer exited with {code}"

    def logs(self) -> str:
        return self.log_path.read_text()

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

    def stop(self) -> None:
        stop_process(self.process, timeout=30)
        self._log.close()


def topics_for(name: str) -> dict[str, Any]:
    """Topic names (and a group) of one test, so tests sharing a broker do not see each other's messages."""
    return {
        "input_topic": f"{name}-in",
        "output_topic": f"{name}-out",
        "dead_letter_topic": f"{name}-dlq",
        "group_id": f"{name}-scorer",
    }
