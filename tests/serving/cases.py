"""Requests, expectations and clients shared by the in-process and the real-process server tests."""

from __future__ import annotations

import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests

from fraud_detection.boosting import predict_proba
from fraud_detection.modeldir import load_model_dir
from fraud_detection.schema import FEATURES
from tests.serving.conftest import MODEL_VERSION

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


def check_v1(response: Any, model_dir: Path, x: np.ndarray) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    proba, flagged = expected(model_dir, x)
    got = [p["fraud_probability"] for p in body["predictions"]]
    np.testing.assert_allclose(got, proba, rtol=1e-5, atol=1e-7)
    assert [p["is_fraud"] for p in body["predictions"]] == flagged.tolist()
    assert {p["model_version"] for p in body["predictions"]} == {MODEL_VERSION}
    assert body["model_version"] == MODEL_VERSION


def check_v2(response: Any, model_dir: Path, x: np.ndarray) -> None:
    assert response.status_code == 200, response.text
    body = response.json()
    outputs = {o["name"]: o for o in body["outputs"]}
    proba, flagged = expected(model_dir, x)
    assert outputs["fraud_probability"]["datatype"] == "FP32"
    assert outputs["fraud_probability"]["shape"] == [len(x)]
    np.testing.assert_allclose(outputs["fraud_probability"]["data"], proba, rtol=1e-5, atol=1e-7)
    assert outputs["is_fraud"]["data"] == flagged.tolist()
    assert body["model_version"] == MODEL_VERSION


def check_explain(response: Any, model_dir: Path, x: np.ndarray) -> dict[str, Any]:
    """An explanation per row whose contributions add up to the row's prediction (in log-odds); returns the body."""
    assert response.status_code == 200, response.text
    body: dict[str, Any] = response.json()
    assert body["units"] == "log-odds"
    proba, _ = expected(model_dir, x)
    for explanation, p in zip(body["explanations"], proba, strict=True):
        assert set(explanation["contributions"]) == set(FEATURES)
        margin = explanation["base_value"] + sum(explanation["contributions"].values())
        assert margin == pytest.approx(math.log(p / (1 - p)), abs=1e-3)
    np.testing.assert_allclose([e["fraud_probability"] for e in body["explanations"]], proba, rtol=1e-5)
    return body


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

each_bad_input = pytest.mark.parametrize(
    ("path", "body", "headers", "status", "words"),
    [case[1:] for case in BAD_INPUTS],
    ids=[case[0] for case in BAD_INPUTS],
)
"""Runs a test once per case of :data:`BAD_INPUTS`; the test hands its arguments to :func:`check_bad_input`."""


def check_bad_input(
    client: Any, path: str, body: Any, headers: dict[str, str] | None, status: int, words: list[str]
) -> None:
    """Send one case of :data:`BAD_INPUTS`: its status, and a message that holds each of its words."""
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


READY = "/v2/health/ready"


class ProcessClient:
    """A real server at ``url`` behind the same ``post`` as FastAPI's ``TestClient``."""

    def __init__(self, url: str) -> None:
        self.url = url

    def post(
        self, path: str, json: Any = None, content: bytes | None = None, headers: dict[str, str] | None = None
    ) -> requests.Response:
        return requests.post(self.url + path, json=json, data=content, headers=headers, timeout=10)


def wait_ready(client: Any, timeout: float = 30.0) -> None:
    """Poll the readiness route until the model has loaded (bounded)."""
    deadline = time.monotonic() + timeout
    while client.get(READY).status_code != 200:
        assert time.monotonic() < deadline, f"not ready after {timeout}s"
        time.sleep(0.05)


def post(client: Any, path: str, body: Any = None, data: bytes | None = None, headers: Any = JSON) -> Any:
    """POST a JSON body (or raw bytes) through a ``TestClient`` or a :class:`ProcessClient`."""
    if data is None:
        return client.post(path, json=body, headers=headers)
    return client.post(path, content=data, headers=headers)
