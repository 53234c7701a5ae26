"""Model loading: readiness before and after load, gs:// on a real storage emulator, missing and corrupt models."""

from __future__ import annotations

import re
import shutil
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
import requests

from fraud_detection.modeldir import MODEL_FILE, export_model_dir
from fraud_detection.schema import FEATURES
from tests.serving.conftest import MODEL_VERSION, ServerProcess

pytestmark = pytest.mark.slow

NAME = "fraud-detector"
Starter = Callable[..., ServerProcess]
BODY = {"instances": [dict.fromkeys(FEATURES, 0.5)]}
NOT_READY_PATHS = ("/v2/health/ready", f"/v2/models/{NAME}/ready", f"/v1/models/{NAME}")


def assert_not_ready(server: ServerProcess) -> None:
    for path in NOT_READY_PATHS:
        assert server.status(path) == 503, path
    response = requests.post(f"{server.url}/v1/models/{NAME}:predict", json=BODY, timeout=5)
    assert response.status_code == 503
    assert "not ready" in response.json()["error"]
    assert server.status("/v2/health/live") == 200


def messages(server: ServerProcess) -> list[str]:
    return [str(r.get("message", "")) for r in server.log_records()]


@pytest.fixture
def start(tmp_path: Path) -> Iterator[Starter]:
    started: list[ServerProcess] = []

    def _start(model_uri: str, **env: str) -> ServerProcess:
        process = ServerProcess(model_uri, tmp_path / f"server{len(started)}.log", env)
        started.append(process)
        return process

    yield _start
    for process in started:
        process.stop()


def test_gs_model_missing_then_uploaded_becomes_ready(start: Starter, gcs_bucket: str, model_dir: Path) -> None:
    import os

    uri = f"gs://{gcs_bucket}/serving/champion-{time.monotonic_ns()}"
    server = start(uri, STORAGE_EMULATOR_HOST=os.environ["STORAGE_EMULATOR_HOST"], FRAUD_LOAD_RETRY_SECONDS="0.5")
    server.wait_live()
    server.wait_until(lambda: any("model not loaded from gs://" in m for m in messages(server)), what="load error")
    assert_not_ready(server)
    failure = next(m for m in messages(server) if "model not loaded from gs://" in m)
    assert uri in failure and "no objects under" in failure

    export_model_dir(model_dir, uri)
    server.wait_ready(timeout=60)
    assert server.status(f"/v2/models/{NAME}/ready") == 200
    response = requests.post(f"{server.url}/v1/models/{NAME}:predict", json=BODY, timeout=5)
    assert response.status_code == 200
    assert response.json()["model_version"] == MODEL_VERSION
    assert any(f"loaded from {uri}" in m for m in messages(server))


def test_corrupt_model_is_not_ready_and_does_not_crash(start: Starter, tmp_path: Path, model_dir: Path) -> None:
    broken = tmp_path / "broken"
    shutil.copytree(model_dir, broken)
    (broken / MODEL_FILE).write_bytes(b"this is not a booster")
    server = start(str(broken), FRAUD_LOAD_RETRY_SECONDS="0.3")
    server.wait_live()
    server.wait_until(
        lambda: sum("not a readable XGBoost model" in m for m in messages(server)) >= 2, what="two failed attempts"
    )
    assert_not_ready(server)
    assert server.process.poll() is None, "the server must stay up, not crash-loop"
    records = server.log_records()
    failures = [r for r in records if "not a readable XGBoost model" in str(r.get("message"))]
    assert all(r["severity"] == "ERROR" for r in failures)
    assert "Traceback" not in server.log_path.read_text()


def test_missing_local_model_with_retries_off(start: Starter, tmp_path: Path) -> None:
    server = start(str(tmp_path / "nowhere"), FRAUD_LOAD_RETRY_SECONDS="0")
    server.wait_live()
    server.wait_until(lambda: any("retries are off" in m for m in messages(server)), what="give-up line")
    assert any("metadata file is missing" in m for m in messages(server))
    assert_not_ready(server)


def test_two_worker_processes_serve(start: Starter, model_dir: Path) -> None:
    server = start(str(model_dir), FRAUD_WORKERS="2", FRAUD_MODEL_NAME="fraud-detector")
    # Both workers' own word first: six ready probes may all reach the one worker that has loaded (the kernel
    # spreads connections, it does not alternate them), and the next request the other, still loading.
    server.wait_until(
        lambda: sum("loaded from" in m for m in messages(server)) == 2, what="each worker loads the model"
    )
    server.wait_until(
        lambda: all(server.status("/v2/health/ready") == 200 for _ in range(6)), what="both workers ready"
    )
    for _ in range(6):
        response = requests.post(f"{server.url}/v1/models/{NAME}:predict", json=BODY, timeout=5)
        assert response.status_code == 200
        assert response.json()["model_version"] == MODEL_VERSION
    # Each request opens a new connection, so the kernel spreads them over both workers; every scrape,
    # whichever worker answers it, must count the rows both scored.
    for _ in range(34):
        assert requests.post(f"{server.url}/v1/models/{NAME}:predict", json=BODY, timeout=5).status_code == 200
    pattern = re.compile(r'^fraud_predictions_total\{model_name="fraud-detector",model_version="[^"]+"\} (\S+)$', re.M)
    for _ in range(6):
        scraped = pattern.findall(requests.get(f"{server.url}/metrics", timeout=5).text)
        assert [float(v) for v in scraped] == [40.0]
