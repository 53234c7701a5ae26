"""The model server as a real process on 127.0.0.1: protocols, explanations, validation, metrics, a real client."""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from fraud_detection.modeldir import load_model_dir
from fraud_detection.schema import FEATURES
from fraud_detection.train import predict_proba
from tests.serving.conftest import MODEL_VERSION, ServerProcess

pytestmark = pytest.mark.slow

NAME = "fraud-detector"
V1 = f"/v1/models/{NAME}:predict"
EXPLAIN = f"/v1/models/{NAME}:explain"
V2 = f"/v2/models/{NAME}/infer"
JSON = {"Content-Type": "application/json"}


def rows(n: int = 3, seed: int = 0) -> np.ndarray:
    """Rows of plausible features; the last one is pushed into a fraud region so both decisions occur."""
    rng = np.random.default_rng(seed)
    x = rng.normal(0, 1, size=(n, len(FEATURES))).astype(np.float32)
    x[:, -1] = rng.uniform(1, 300, size=n)
    x[-1, FEATURES.index("V14")] = -9.0
    x[-1, FEATURES.index("V12")] = -8.0
    x[-1, -1] = 1.0
    return x


def named(x: np.ndarray) -> list[dict[str, float]]:
    return [dict(zip(FEATURES, map(float, row), strict=True)) for row in x]


def expected(model_dir: Path, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    booster, metadata = load_model_dir(model_dir)
    proba = predict_proba(booster, x)
    return proba, proba >= metadata.threshold


def post(server: ServerProcess, path: str, body: Any = None, data: bytes | None = None, headers: Any = JSON) -> Any:
    if data is None:
        return requests.post(server.url + path, json=body, headers=headers, timeout=10)
    return requests.post(server.url + path, data=data, headers=headers, timeout=10)


def check_v1(response: requests.Response, model_dir: Path, x: np.ndarray) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    proba, flagged = expected(model_dir, x)
    got = [p["fraud_probability"] for p in body["predictions"]]
    np.testing.assert_allclose(got, proba, rtol=1e-5, atol=1e-7)
    assert [p["is_fraud"] for p in body["predictions"]] == flagged.tolist()
    assert {p["model_version"] for p in body["predictions"]} == {MODEL_VERSION}
    assert body["model_version"] == MODEL_VERSION


def test_v1_named_objects(server: ServerProcess, model_dir: Path) -> None:
    x = rows(4)
    check_v1(post(server, V1, {"instances": named(x)}), model_dir, x)


def test_v1_both_decisions_occur(server: ServerProcess, model_dir: Path) -> None:
    x = rows(4)
    _, flagged = expected(model_dir, x)
    assert flagged.any() and not flagged.all(), "test rows should include a flagged and a clean transaction"


def test_v1_ordered_lists(server: ServerProcess, model_dir: Path) -> None:
    x = rows(3, seed=1)
    check_v1(post(server, V1, {"instances": x.tolist()}), model_dir, x)


@pytest.mark.parametrize("path", [V1, "/predict"])
def test_flat_object(server: ServerProcess, model_dir: Path, path: str) -> None:
    x = rows(1, seed=2)
    check_v1(post(server, path, named(x)[0]), model_dir, x)


def check_v2(response: requests.Response, model_dir: Path, x: np.ndarray) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    outputs = {o["name"]: o for o in body["outputs"]}
    proba, flagged = expected(model_dir, x)
    assert outputs["fraud_probability"]["datatype"] == "FP32"
    assert outputs["fraud_probability"]["shape"] == [len(x)]
    np.testing.assert_allclose(outputs["fraud_probability"]["data"], proba, rtol=1e-5, atol=1e-7)
    assert outputs["is_fraud"]["data"] == flagged.tolist()
    assert body["model_version"] == MODEL_VERSION


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


GOOD = named(rows(1))[0]


def without(key: str) -> dict[str, Any]:
    return {k: v for k, v in GOOD.items() if k != key}


def tensor(shape: list[int], datatype: str = "FP32", data: Any = None) -> dict[str, Any]:
    size = int(np.prod(shape))
    values = data if data is not None else [0.5] * size
    return {"inputs": [{"name": "x", "shape": shape, "datatype": datatype, "data": values}]}


# (id, path, json body or raw bytes, headers, status, words the message must contain)
BAD_INPUTS: list[tuple[str, str, Any, dict[str, str] | None, int, list[str]]] = [
    ("missing feature", V1, {"instances": [without("V7")]}, None, 400, ["instances[0]", "missing", "V7"]),
    ("extra feature", V1, {"instances": [{**GOOD, "V30": 1.0}]}, None, 400, ["unknown", "V30"]),
    ("misspelt feature", V1, {"instances": [{**without("Amount"), "amount": 1.0}]}, None, 400, ["mean 'Amount'"]),
    ("string value", V1, {"instances": [{**GOOD, "V3": "1.5"}]}, None, 400, ["instances[0].V3", "number", "string"]),
    ("null value", V1, {"instances": [{**GOOD, "V4": None}]}, None, 400, ["instances[0].V4", "null"]),
    ("boolean value", V1, {"instances": [{**GOOD, "V5": True}]}, None, 400, ["instances[0].V5", "boolean"]),
    ("NaN literal", V1, b'{"instances": [[NaN]]}', None, 400, ["Unrecognized request format"]),
    ("infinite number", V1, b'{"instances": [[1e999]]}', None, 400, ["infinity"]),
    ("float32 overflow", V1, {"instances": [{**GOOD, "V6": 1e39}]}, None, 400, ["V6", "float32 range"]),
    ("negative amount", V1, {"instances": [{**GOOD, "Amount": -5.0}]}, None, 400, ["Amount must be >= 0"]),
    ("short row", V1, {"instances": [[0.1] * 28]}, None, 400, ["instances[0] has 28 values, expected 29"]),
    ("mixed rows", V1, {"instances": [GOOD, [0.1] * 29]}, None, 400, ["instances[1]", "expected an object"]),
    ("empty batch", V1, {"instances": []}, None, 400, ["empty"]),
    ("oversized batch", V1, {"instances": [[0.1] * 29] * 51}, None, 400, ["51 rows", "limit of 50"]),
    ("instances not a list", V1, {"instances": GOOD}, None, 400, ["must be a list"]),
    ("body is a list", V1, [GOOD], None, 400, ["JSON object"]),
    ("V1 not JSON", V1, b"V1=1&V2=2", None, 400, ["Unrecognized request format"]),
    ("no content type", V1, b'{"instances": []}', {}, 400, ["missing Content-Type"]),
    ("text content type", V1, b"{}", {"Content-Type": "text/plain"}, 400, ["unsupported Content-Type 'text/plain'"]),
    ("V2 body on V1", V1, tensor([1, 29]), None, 400, ["V2 body"]),
    ("V2 wrong shape", V2, tensor([1, 28]), None, 400, ["shape must be [N, 29]", "[1, 28]"]),
    ("V2 3-d shape", V2, tensor([1, 29, 1]), None, 400, ["shape must be [N, 29]"]),
    ("V2 wrong datatype", V2, tensor([1, 29], "INT64", [1] * 29), None, 400, ["datatype must be FP32", "INT64"]),
    ("V2 data/shape mismatch", V2, tensor([2, 29], data=[0.5] * 29), None, 400, ["needs 58 values", "has 29"]),
    ("V2 string element", V2, tensor([1, 29], data=["a"] + [0.5] * 28), None, 400, ["element 0", "string"]),
    ("V2 empty batch", V2, tensor([0, 29], data=[]), None, 400, ["empty"]),
    ("V2 oversized batch", V2, tensor([51, 29]), None, 400, ["51 rows", "limit of 50"]),
    ("V2 no inputs", V2, {"inputs": []}, None, 400, ["'inputs' is empty"]),
    (
        "V2 missing data",
        V2,
        {"inputs": [{"name": "x", "shape": [1, 29], "datatype": "FP32"}]},
        None,
        400,
        ["inputs[0]: 'data' is required"],
    ),
    ("V2 not JSON", V2, b"not json", None, 400, ["not valid JSON"]),
    ("V2 not JSON, no content type", V2, b"V1=1", {}, 400, ["not valid JSON"]),
    (
        "V2 per-feature missing",
        V2,
        {"inputs": [{"name": f, "shape": [1], "datatype": "FP32", "data": [0.1]} for f in FEATURES[:-1]]},
        None,
        400,
        ["missing features ['Amount']"],
    ),
    (
        "V2 per-feature uneven rows",
        V2,
        {
            "inputs": [
                {"name": f, "shape": [n], "datatype": "FP32", "data": [0.1] * n}
                for f, n in ((f, 2 if f == "V9" else 1) for f in FEATURES)
            ]
        },
        None,
        400,
        ["'V9' has 2 rows"],
    ),
    (
        "V2 shape not a list",
        V2,
        {"inputs": [{"name": "x", "shape": 29, "datatype": "FP32", "data": []}]},
        None,
        400,
        ["inputs[0].shape: expected list, got int"],
    ),
    ("V1 body on V2", V2, {"instances": [GOOD]}, None, 400, ["V1 body"]),
    ("V2 bad binary header", V2, b"{}", {"Inference-Header-Content-Length": "x"}, 400, ["must be a byte count"]),
    (
        "V2 binary, header without inputs",
        V2,
        b"{}",
        {"Inference-Header-Content-Length": "2"},
        400,
        ["invalid binary V2 request", "inputs"],
    ),
    (
        "V2 binary, tensor shorter than its shape",
        V2,
        b'{"inputs":[{"name":"x","shape":[1,29],"datatype":"FP32","parameters":{"binary_data_size":8}}]}' + b"\0" * 8,
        {"Inference-Header-Content-Length": "94"},
        400,
        ["invalid binary V2 request"],
    ),
    ("V2 unknown output", V2, {**tensor([1, 29]), "outputs": [{"name": "score"}]}, None, 400, ["score"]),
    ("explain bad row", EXPLAIN, {"instances": [without("V1")]}, None, 400, ["missing features ['V1']"]),
]


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
