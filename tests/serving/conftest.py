"""Fixtures for the model server tests: a small real model, a real OTLP receiver, real server processes."""

from __future__ import annotations

import json
import os
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from tests.conftest import free_port, stop_process
from tests.serving.otlp import OtlpReceiver

REPO = Path(__file__).resolve().parents[2]
MODEL_VERSION = "7"
START_TIMEOUT = 90.0


def make_model_dir(directory: Path, n_rows: int = 20_000, seed: int = 3) -> Path:
    """Train a small real booster on synthetic data and save it as a serving model directory."""
    from fraud_detection import synth
    from fraud_detection.boosting import TrainParams, features_and_label, train_booster
    from fraud_detection.modeldir import ModelMetadata, save_model_dir

    frame = synth.generate(synth.SyntheticConfig(n_rows=n_rows, seed=seed))
    cut = int(len(frame) * 0.7)
    x_train, y_train = features_and_label(frame.iloc[:cut])
    x_valid, y_valid = features_and_label(frame.iloc[cut:])
    result = train_booster(
        x_train,
        y_train,
        x_valid,
        y_valid,
        TrainParams(n_rounds=30, early_stopping_rounds=10, max_depth=4, nthread=1),
        log_every=0,
    )
    metadata = ModelMetadata(model_version=MODEL_VERSION, threshold=result.threshold, data_version="test")
    return save_model_dir(result.booster, metadata, directory)


@pytest.fixture(scope="session")
def model_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model directory (trained in a couple of seconds)."""
    return make_model_dir(tmp_path_factory.mktemp("model"))


@pytest.fixture(scope="session")
def otlp_receiver() -> Iterator[OtlpReceiver]:
    receiver = OtlpReceiver()
    try:
        yield receiver
    finally:
        receiver.stop()


class PolledServer:
    """A model server reached over HTTP at ``url``, polled until a condition holds.

    Subclasses say whether the server is still up (:meth:`exited`, a message when it is not), and give its log
    (:meth:`logs`).
    """

    url: str

    def exited(self) -> str:
        """Why the server is no longer running, or "" while it runs."""
        raise NotImplementedError

    def logs(self) -> str:
        """Everything the server has written so far."""
        raise NotImplementedError

    def log_tail(self, lines: int = 30) -> str:
        return "\n".join(self.logs().splitlines()[-lines:])

    def log_records(self) -> list[dict[str, Any]]:
        """The JSON log lines, parsed (other lines are skipped)."""
        records = []
        for line in self.logs().splitlines():
            if line.startswith("{"):
                try:
                    records.append(json.loads(line))
                except json.JSONDecodeError:
                    continue
        return records

    def status(self, path: str) -> int:
        return requests.get(self.url + path, timeout=5).status_code

    def wait_until(self, check: Callable[[], bool], timeout: float = START_TIMEOUT, what: str = "condition") -> None:
        """Poll ``check`` until true; fail (with the log tail) after ``timeout`` seconds or if the server exited."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if reason := self.exited():
                raise AssertionError(f"{reason}:\n{self.log_tail()}")
            try:
                if check():
                    return
            except requests.RequestException:
                pass
            time.sleep(0.2)
        raise AssertionError(f"timed out after {timeout}s waiting for {what}:\n{self.log_tail()}")

    def wait_live(self) -> None:
        self.wait_until(lambda: self.status("/v2/health/live") == 200, what="liveness")

    def wait_ready(self, timeout: float = START_TIMEOUT) -> None:
        self.wait_until(lambda: self.status("/v2/health/ready") == 200, timeout=timeout, what="readiness")


class ProcessServer(PolledServer):
    """A :class:`PolledServer` run as ``python -m <module>`` on 127.0.0.1, its output (JSON logs) in ``log_path``."""

    def __init__(self, module: str, options: list[str], log_path: Path, env: dict[str, str]) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = log_path
        self.module = module
        full_env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
        full_env.update({"PYTHONUNBUFFERED": "1", "FRAUD_LOAD_RETRY_SECONDS": "1", **env})
        command = [sys.executable, "-m", module, "--host", "127.0.0.1", "--port", str(self.port), *options]
        self._log = log_path.open("a")
        self.process = subprocess.Popen(command, cwd=REPO, env=full_env, stdout=self._log, stderr=subprocess.STDOUT)

    def exited(self) -> str:
        code = self.process.poll()
        return "" if code is None else f"{self.module} exited with {code}"

    def logs(self) -> str:
        return self.log_path.read_text()

    def stop(self, timeout: float = 20) -> None:
        stop_process(self.process, timeout=timeout)
        self._log.close()


class ServerProcess(ProcessServer):
    """``python -m serving`` (the image's entry point)."""

    def __init__(self, model_uri: str, log_path: Path, env: dict[str, str] | None = None) -> None:
        super().__init__("serving", ["--model-uri", model_uri], log_path, env or {})


@pytest.fixture(scope="session")
def server(
    model_dir: Path, otlp_receiver: OtlpReceiver, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """One ready server for the protocol, validation, tracing and client tests (tracing to the receiver)."""
    env = {
        "FRAUD_TRACING_EXPORTER": "otlp",
        "FRAUD_OTLP_ENDPOINT": otlp_receiver.endpoint,
        "FRAUD_GCP_PROJECT": "test-project",
        "FRAUD_MAX_BATCH_ROWS": "50",
    }
    process = ServerProcess(str(model_dir), tmp_path_factory.mktemp("server") / "server.log", env)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


@pytest.fixture(scope="session")
def app_client(model_dir: Path) -> Iterator[Any]:
    """The app in-process, its model loaded (the lifespan runs the background load)."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.settings import ServingSettings
    from tests.serving.cases import wait_ready

    app = create_app(ServingSettings(model_uri=str(model_dir), max_batch_rows=50, load_retry_seconds=0))
    with TestClient(app) as client:
        wait_ready(client)
        yield client
