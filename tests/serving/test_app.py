"""The app from :func:`serving.app.create_app`, driven in-process (no socket): protocols, errors, readiness."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import pytest
from fastapi import FastAPI
from fastapi.testclient import TestClient

from fraud_detection.schema import FEATURES
from serving import errors
from serving.app import create_app
from serving.settings import ServingSettings
from tests.serving.cases import (
    BAD_INPUTS,
    EXPLAIN,
    GOOD,
    JSON,
    NAME,
    V1,
    V2,
    check_v1,
    check_v2,
    expected,
    named,
    rows,
)
from tests.serving.conftest import MODEL_VERSION

READY = "/v2/health/ready"


def wait_ready(client: TestClient, timeout: float = 30.0) -> None:
    deadline = time.monotonic() + timeout
    while client.get(READY).status_code != 200:
        assert time.monotonic() < deadline, f"not ready after {timeout}s"
        time.sleep(0.05)


@pytest.fixture(scope="module")
def client(model_dir: Path) -> Iterator[TestClient]:
    app = create_app(ServingSettings(model_uri=str(model_dir), max_batch_rows=50, load_retry_seconds=0))
    with TestClient(app) as test_client:  # runs the lifespan: the model loads in the background
        wait_ready(test_client)
        yield test_client


def post(client: TestClient, path: str, body: Any = None, data: bytes | None = None, headers: Any = JSON) -> Any:
    if data is None:
        return client.post(path, json=body, headers=headers)
    return client.post(path, content=data, headers=headers)


def test_v1_named_objects(client: TestClient, model_dir: Path) -> None:
    x = rows(4)
    _, flagged = expected(model_dir, x)
    assert flagged.any() and not flagged.all(), "the rows should hold a flagged and a clean transaction"
    response = post(client, V1, {"instances": named(x)}, headers={**JSON, "X-Request-Id": "in-process-1"})
    check_v1(response, model_dir, x)
    assert response.headers["x-request-id"] == "in-process-1"


def test_v1_ordered_lists(client: TestClient, model_dir: Path) -> None:
    x = rows(3, seed=1)
    check_v1(post(client, V1, {"instances": x.tolist()}), model_dir, x)


@pytest.mark.parametrize("path", [V1, "/predict"])
def test_flat_object(client: TestClient, model_dir: Path, path: str) -> None:
    x = rows(1, seed=2)
    check_v1(post(client, path, named(x)[0]), model_dir, x)


def test_v2_one_tensor(client: TestClient, model_dir: Path) -> None:
    x = rows(5, seed=3)
    tensor = {"name": "transactions", "shape": [5, 29], "datatype": "FP32", "data": x.tolist()}
    check_v2(post(client, V2, {"inputs": [tensor]}), model_dir, x)


def test_v2_one_input_per_feature_without_content_type(client: TestClient, model_dir: Path) -> None:
    x = rows(3, seed=5)
    inputs = [
        {"name": name, "shape": [3], "datatype": "FP32", "data": x[:, i].tolist()} for i, name in enumerate(FEATURES)
    ]
    check_v2(post(client, V2, data=orjson.dumps({"inputs": inputs}), headers={}), model_dir, x)


def test_v2_binary_tensor(client: TestClient, model_dir: Path) -> None:
    x = rows(4, seed=7)
    header = orjson.dumps(
        {"inputs": [{"name": "t", "shape": [4, 29], "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}]}
    )
    response = post(
        client, V2, data=header + x.tobytes(), headers={"Inference-Header-Content-Length": str(len(header))}
    )
    check_v2(response, model_dir, x)


def test_explain(client: TestClient, model_dir: Path) -> None:
    x = rows(2, seed=6)
    response = post(client, EXPLAIN, {"instances": named(x)})
    assert response.status_code == 200, response.text
    proba, _ = expected(model_dir, x)
    got = [e["fraud_probability"] for e in response.json()["explanations"]]
    np.testing.assert_allclose(got, proba, rtol=1e-5)


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "words"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_gets_a_clear_4xx(
    client: TestClient, path: str, body: Any, headers: dict[str, str] | None, status: int, words: list[str]
) -> None:
    sent = JSON if headers is None else headers
    response = (
        post(client, path, data=body, headers=sent)
        if isinstance(body, bytes)
        else post(client, path, body, headers=sent)
    )
    assert response.status_code == status, response.text
    message = response.json()["error"]
    for word in words:
        assert word in message, message


def test_unknown_model_is_404(client: TestClient) -> None:
    for path in ("/v1/models/nope:predict", "/v2/models/nope/infer"):
        response = post(client, path, {"instances": [GOOD]} if path.startswith("/v1") else {"inputs": []})
        assert response.status_code == 404, (path, response.text)
        assert "nope" in response.json()["error"]


def test_model_metadata_and_readiness_routes_are_kserve_s(client: TestClient) -> None:
    assert client.get(f"/v1/models/{NAME}").json() == {"name": NAME, "ready": True}
    assert client.get(f"/v2/models/{NAME}/ready").json()["ready"] is True
    assert client.get("/v2/health/live").status_code == 200
    assert client.get("/").json() == {"status": "alive"}
    metrics = client.get("/metrics")
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
