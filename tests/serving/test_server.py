"""The model server as a real process on 127.0.0.1: the body limit before reading, logs, metrics, a real client,
concurrency. The protocol and bad-input cases run against this process too, in test_protocols."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from tests.serving.cases import (
    JSON,
    NAME,
    V1,
    ProcessClient,
    expected,
    named,
    post,
    rows,
    without,
)
from tests.serving.conftest import MODEL_VERSION, ServerProcess

pytestmark = pytest.mark.slow


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
    post(ProcessClient(server.url), V1, {"instances": [without("V2")]})
    post(ProcessClient(server.url), V1, data=b"not json")

    def refused_lines() -> list[dict[str, Any]]:
        return [r for r in server.log_records() if r.get("event") == "request" and r["httpRequest"]["status"] == 400]

    # Log lines are written by a writer thread, a few milliseconds after the answer.
    server.wait_until(lambda: len(refused_lines()) >= 2, timeout=10, what="4xx answers access-logged")
    records = server.log_records()
    refused = refused_lines()
    assert all(r["severity"] == "WARNING" and r["error"] for r in refused)
    text = server.log_path.read_text()
    assert "Traceback" not in text
    assert not [r for r in records if r.get("severity") == "ERROR"], [r for r in records if r["severity"] == "ERROR"]


def test_prediction_record_is_logged(server: ServerProcess) -> None:
    x = rows(4, seed=9)
    response = post(
        ProcessClient(server.url), V1, {"instances": named(x)}, headers={**JSON, "X-Request-Id": "req-abc-123"}
    )
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
    post(ProcessClient(server.url), V1, {"instances": named(rows(3))})
    post(ProcessClient(server.url), V1, {"instances": []})
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
        response = post(ProcessClient(server.url), V1, {"instances": [x[i].tolist()]})
        assert response.status_code == 200, response.text
        return float(response.json()["predictions"][0]["fraud_probability"])

    with ThreadPoolExecutor(max_workers=16) as pool:
        got = list(pool.map(one, range(len(x))))
    np.testing.assert_allclose(got, proba, rtol=1e-5, atol=1e-7)
