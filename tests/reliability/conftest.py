"""Candidates trained once for the reliability tests, the test window they are scored on, and a real
`mlflow server` process (restartable on its port, for the fault tests)."""

from __future__ import annotations

import contextlib
import os
import signal
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraud_detection import boosting, data
from fraud_detection.steps.bakeoff import train_step
from tests.conftest import free_port, wait_http

CANDIDATE_SPECS = {"c0": (40, 1), "a": (15, 2), "b": (80, 3), "c": (25, 4), "d": (160, 5)}
"""name -> (boosting rounds, seed): five models of different test AUPRC."""


@pytest.fixture(scope="session")
def windows(tmp_path_factory, small_frame) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("reliability-windows")
    split = data.time_split(data.validate(small_frame, "age_group"))
    paths = {}
    for name in ("train", "validation", "test"):
        paths[name] = folder / f"{name}.parquet"
        data.write_parquet(split[name], paths[name])
    return paths


@pytest.fixture(scope="session")
def tracking_uri(tmp_path_factory) -> str:
    return f"sqlite:///{tmp_path_factory.mktemp('reliability-mlflow')}/mlflow.db"


@pytest.fixture(scope="session")
def candidates(windows, tracking_uri, tmp_path_factory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("reliability-candidates")
    out = {}
    for name, (rounds, seed) in CANDIDATE_SPECS.items():
        out[name] = folder / name
        params = boosting.TrainParams(
            families=["xgboost"], n_rounds=rounds, seed=seed, early_stopping_rounds=rounds, learning_rate=0.05
        )
        train_step(
            windows["train"], windows["validation"], windows["test"], params, out[name], tracking_uri, "rel", "sha256:r"
        )
    return out


class MlflowServer:
    """`mlflow server` on a fixed port over one SQLite file and artifact folder: kill -9 and start again."""

    def __init__(self, root: Path, backend_store_uri: str | None = None) -> None:
        self.root = root
        self.backend_store_uri = backend_store_uri or f"sqlite:///{root}/mlflow.db"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.process: subprocess.Popen[bytes] | None = None
        self.starts = 0

    @classmethod
    @contextlib.contextmanager
    def running(cls, root: Path, backend_store_uri: str | None = None) -> Iterator[MlflowServer]:
        """A server started and healthy for the block, stopped after it."""
        server = cls(root, backend_store_uri)
        server.start()
        try:
            server.wait_healthy()
            yield server
        finally:
            server.stop()

    def start(self) -> None:
        command = [
            *(sys.executable, "-m", "mlflow", "server"),
            *("--backend-store-uri", self.backend_store_uri),
            *("--artifacts-destination", (self.root / "artifacts").as_uri()),
            *("--host", "127.0.0.1", "--port", str(self.port), "--workers", "1"),
        ]
        self.starts += 1
        log = (self.root / f"server{self.starts}.log").open("w")
        # Its own session: the server's worker processes are killed with it, as a pod's are.
        self.process = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, start_new_session=True)
        log.close()

    def wait_healthy(self, timeout: float = 120) -> None:
        """Until ``/health`` answers 200; RuntimeError (with the log's tail) if the server exits first."""
        assert self.process is not None
        wait_http(f"{self.url}/health", timeout, self.process, self.root / f"server{self.starts}.log")

    def kill(self) -> None:
        """SIGKILL, as a node failure or OOM kill would: no shutdown of any kind."""
        if self.process is not None:
            with contextlib.suppress(ProcessLookupError):
                os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                urllib.request.urlopen(f"{self.url}/health", timeout=1)
            except OSError:
                return
            time.sleep(0.2)

    def stop(self) -> None:
        if self.process is None:
            return
        try:
            os.killpg(self.process.pid, signal.SIGTERM)
            self.process.wait(timeout=20)
        except ProcessLookupError:
            pass
        except subprocess.TimeoutExpired:
            os.killpg(self.process.pid, signal.SIGKILL)
            self.process.wait(timeout=20)


@pytest.fixture()
def shared_server(tmp_path, tracking_uri) -> Iterator[MlflowServer]:
    """A real `mlflow server` over the session's SQLite store (where the candidates' runs are)."""
    with MlflowServer.running(tmp_path, backend_store_uri=tracking_uri) as server:
        yield server
