"""The app from :func:`serving.app.create_app`, driven in-process (no socket): KServe's routes, the error table,
the body limit, readiness. The protocol and bad-input cases run in-process too, in test_protocols."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

from fastapi import FastAPI
from fastapi.testclient import TestClient

from serving import errors
from serving.app import create_app
from serving.settings import ServingSettings
from tests.serving.cases import GOOD, JSON, NAME, READY, V1, wait_ready
from tests.serving.conftest import MODEL_VERSION


def test_model_metadata_and_readiness_routes_are_kserve_s(app_client: TestClient) -> None:
    assert app_client.get(f"/v1/models/{NAME}").json() == {"name": NAME, "ready": True}
    assert app_client.get(f"/v2/models/{NAME}/ready").json()["ready"] is True
    assert app_client.get("/v2/health/live").status_code == 200
    assert app_client.get("/").json() == {"status": "alive"}
    assert app_client.post(V1, json={"instances": [GOOD]}, headers=JSON).status_code == 200
    metrics = app_client.get("/metrics")
    assert metrics.status_code == 200 and "fraud_predictions_total" in metrics.text


def test_every_error_type_of_the_table_is_handled_by_the_app(model_dir: Path) -> None:
    app = create_app(ServingSettings(model_uri=str(model_dir)))
    for kind in [*errors.STATUS, Exception]:
        assert app.exception_handlers[kind] is errors.handle, kind


def test_a_body_growing_past_the_limit_is_413(model_dir: Path) -> None:
    app = create_app(ServingSettings(model_uri=str(model_dir), max_body_bytes=1024, load_retry_seconds=0))

    def chunks() -> Iterator[bytes]:  # no Content-Length: the limit is enforced as the body is read
        yield b'{"instances": ['
        for _ in range(20):
            yield b"[" + b"0.5, " * 28 + b"0.5],"
        yield b"[0.5]]}"

    with TestClient(app) as local:
        wait_ready(local)
        response = local.post(V1, content=chunks(), headers=JSON)
    assert response.status_code == 413, response.text
    assert "exceeds the limit of 1024 bytes" in response.json()["error"]


def test_ready_only_once_the_model_is_loaded(model_dir: Path, tmp_path: Path) -> None:
    mount = tmp_path / "models"
    mount.mkdir()
    app: FastAPI = create_app(ServingSettings(model_uri=str(mount), load_retry_seconds=0.1))
    with TestClient(app) as local:
        assert local.get("/v2/health/live").status_code == 200
        for path in (READY, f"/v2/models/{NAME}/ready", f"/v1/models/{NAME}"):
            assert local.get(path).status_code == 503, path
        refused = local.post(V1, json={"instances": [GOOD]})
        assert refused.status_code == 503 and "not ready" in refused.json()["error"]
        assert "metadata file is missing" in (app.state.model.load_error or "")

        for item in model_dir.iterdir():
            shutil.copy2(item, mount / item.name)
        wait_ready(local)
        answer = local.post(V1, json={"instances": [GOOD]})
        assert answer.status_code == 200 and answer.json()["model_version"] == MODEL_VERSION
