"""The model server as a real process on 127.0.0.1: protocols, explanations, validation, metrics, a real client."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from fraud_detection.schema import FEATURES
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
    without,
)
from tests.serving.conftest import MODEL_VERSION, ServerProcess

pytestmark = pytest.mark.slow


def post(server: ServerProcess, path: str, body: Any = None, data: bytes | None = None, headers: Any = JSON) -> Any:
    if data is None:
        return requests.post(server.url + path, json=body, headers=headers, timeout=10)
    return requests.post(server.url + path, data=data, headers=headers, timeout=10)


def test_v1_named_objects(server: ServerProcess, model_dir: Path) -> None:
    x = rows(4)
    check_v1(post(server, V1, {"instances": named(x)}), model_dir, x)


def test_v1_ordered_lists(server: ServerProcess, model_dir: Path) -> None:
    x = rows(3, seed=1)
    check_v1(post(server, V1, {"instances": x.tolist()}), model_dir, x)


@pytest.mark.parametrize("path", [V1, "/predict"])
def test_flat_object(server: ServerProcess, model_dir: Path, path: str) -> None:
    x = rows(1, seed=2)
    check_v1(post(server, path, named(x)[0]), model_dir, x)


def test_v2_one_tensor(server: ServerProcess, model_dir: Path) -> None:
    x = rows(5, seed=3)
    tensor = {"name": "transactions", "shape": [5, 29], "datatype": "FP32", "data": x.tolist()}
    check_v2(post(server, V2, {"inputs": [tensor]}), model_dir, x)


def test_v2_one_tensor_flat_data(server: ServerProcess, model_dir: Path) -> None:
    x = rows(2, seed=4)
    tensor = {"name": "transactions", "shape": [2, 29], "datatype": "FP32", "data": x.reshape(-1).tolist()}
    check_v2(post(server, V2, {"inputs": [tensor]}), model_dir, x)


def test_v2_one_input_per_feature(server: ServerProcess, model_dir: Path) -> None:
    x = rows(3, seed=5)
    inputs = [
        {"name": name, "shape": [3], "datatype": "FP32", "data": x[:, i].tolist()}
        for i, name in reversed(list(enumerate(FEATURES)))  # order of inputs does not matter
    ]
    check_v2(post(server, V2, {"inputs": inputs}), model_dir, x)


def test_explain_contributions_add_up_to_the_prediction(server: ServerProcess, model_dir: Path) -> None:
    x = rows(2, seed=6)
    response = post(server, EXPLAIN, {"instances": named(x)})
    assert response.status_code == 200, response.text
    body = response.json()
    proba, _ = expected(model_dir, x)
    assert body["units"] == "log-odds"
    for explanation, p in zip(body["explanations"], proba, strict=True):
        assert set(explanation["contributions"]) == set(FEATURES)
        margin = explanation["base_value"] + sum(explanation["contributions"].values())
        assert margin == pytest.approx(math.log(p / (1 - p)), abs=1e-3)
        assert explanation["fraud_probability"] == pytest.approx(p, rel=1e-5)


@pytest.mark.parametrize(
    ("path", "body", "headers", "status", "words"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
def test_bad_input_gets_a_clear_4xx(
    server: ServerProcess, path: str, body: Any, headers: dict[str, str] | None, status: int, words: list[str]
) -> None:
    sent_headers = JSON if headers is None else headers
    if isinstance(body, bytes):
        response = post(server, path, data=body, headers=sent_headers)
    else:
        response = post(server, path, body, headers=sent_headers)
    assert response.status_code == status, response.text
    message = response.json()["error"]
    for word in words:
        assert word in message, message


def test_unknown_model_is_404(server: ServerProcess) -> None:
    response = post(server, "/v1/models/nope:predict", {"instances": [GOOD]})
    assert response.status_code == 404
    assert "nope" in response.json()["error"]


def test_oversized_body_is_413_before_it_is_read(server: ServerProcess) -> None:
    import http.client
    import json

    connection = http.client.HTTPConnection("127.0.0.1", server.port, timeout=10)
    try:
        connection.putrequest("POST", V1)
        connection.putheader("Content-Type", "application/json")
        connection.putheader("Content-Length", str(10**9))  # announced, never sent
        connection.endheaders(b"{}")
        response = connection.getresponse()
        assert response.status == 413
        assert "exceeds the limit" in json.loads(response.read())["error"]
    finally:
        connection.close()


def test_refused_requests_are_logged_without_tracebacks(server: ServerProcess) -> None:
    post(server, V1, {"instances": [without("V2")]})
    post(server, V1, data=b"not json")
    records = server.log_records()
    refused = [r for r in records if r.get("event") == "request" and r["httpRequest"]["status"] == 400]
    assert refused, "4xx answers must be access-logged"
    assert all(r["severity"] == "WARNING" and r["error"] for r in refused)
    text = server.log_path.read_text()
    assert "Traceback" not in text
    assert not [r for r in records if r.get("severity") == "ERROR"], [r for r in records if r["severity"] == "ERROR"]


def test_prediction_record_is_logged(server: ServerProcess) -> None:
    x = rows(4, seed=9)
    response = post(server, V1, {"instances": named(x)}, headers={**JSON, "X-Request-Id": "req-abc-123"})
    assert response.status_code == 200
    assert response.headers["x-request-id"] == "req-abc-123"
    proba, flagged = expected(Path(server_model_uri(server)), x)

    def records() -> list[dict[str, Any]]:
        return [r for r in server.log_records() if r.get("request_id") == "req-abc-123" and r["event"] == "prediction"]

    server.wait_until(lambda: bool(records()), timeout=10, what="prediction record")
    record = records()[0]
    assert record["model_version"] == MODEL_VERSION
    assert record["batch_size"] == 4
    assert record["max_score"] == pytest.approx(float(proba.max()), rel=1e-4)
    assert record["decisions"] == flagged.astype(int).tolist()
    assert record["flagged"] == int(flagged.sum())
    assert record["latency_ms"] > 0
    assert record["severity"] == "INFO"
    assert record["httpRequest"]["status"] == 200 and record["httpRequest"]["requestMethod"] == "POST"


def server_model_uri(server: ServerProcess) -> str:
    args = server.process.args
    assert isinstance(args, list)
    return str(args[args.index("--model-uri") + 1])


def test_metrics_expose_kserve_histograms_and_our_counters(server: ServerProcess) -> None:
    before = requests.get(server.url + "/metrics", timeout=5).text
    post(server, V1, {"instances": named(rows(3))})
    post(server, V1, {"instances": []})
    text = requests.get(server.url + "/metrics", timeout=5).text
    assert "request_predict_seconds_bucket" in text

    def value(metrics: str, prefix: str) -> float:
        return sum(float(line.rsplit(" ", 1)[1]) for line in metrics.splitlines() if line.startswith(prefix))

    assert value(text, "fraud_predictions_total") - value(before, "fraud_predictions_total") == 3
    assert value(text, 'fraud_invalid_requests_total{status="400"}') > value(
        before, 'fraud_invalid_requests_total{status="400"}'
    )
    assert "fraud_flagged_total" in text


def test_tritonclient_v2_http(server: ServerProcess, model_dir: Path) -> None:
    import tritonclient.http as triton

    client = triton.InferenceServerClient(url=server.url.removeprefix("http://"), network_timeout=10)
    assert client.is_model_ready(NAME)
    x = rows(6, seed=11)
    for binary in (True, False):
        inp = triton.InferInput("transactions", list(x.shape), "FP32")
        inp.set_data_from_numpy(x, binary_data=binary)
        outputs = [
            triton.InferRequestedOutput("fraud_probability", binary_data=binary),
            triton.InferRequestedOutput("is_fraud", binary_data=binary),
        ]
        result = client.infer(NAME, [inp], outputs=outputs)
        proba, flagged = expected(model_dir, x)
        np.testing.assert_allclose(result.as_numpy("fraud_probability"), proba, rtol=1e-5, atol=1e-7)
        assert result.as_numpy("is_fraud").tolist() == flagged.tolist()
        assert result.get_response()["model_version"] == MODEL_VERSION


def test_concurrent_requests_each_get_their_own_rows_scored(server: ServerProcess, model_dir: Path) -> None:
    """Rows of requests in flight together are scored in one booster call; answers must not mix up."""
    from concurrent.futures import ThreadPoolExecutor

    x = rows(48, seed=21)
    proba, _ = expected(model_dir, x)

    def one(i: int) -> float:
        response = post(server, V1, {"instances": [x[i].tolist()]})
        assert response.status_code == 200, response.text
        return float(response.json()["predictions"][0]["fraud_probability"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        got = list(pool.map(one, range(len(x))))
    np.testing.assert_allclose(got, proba, rtol=1e-5, atol=1e-7)
