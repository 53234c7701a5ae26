"""Every protocol, explanation and bad-input case against both servers: the app in-process and the real process.

The in-process app (``serving.app.create_app`` under FastAPI's ``TestClient``) answers in milliseconds; the real
``python -m serving`` process on 127.0.0.1 is what KServe runs. Both must give the same answers.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import orjson
import pytest

from fraud_detection.schema import FEATURES
from tests.serving.cases import (
    EXPLAIN,
    GOOD,
    V1,
    V2,
    ProcessClient,
    check_bad_input,
    check_explain,
    check_v1,
    check_v2,
    each_bad_input,
    expected,
    named,
    post,
    rows,
)


@pytest.fixture(params=["in-process", pytest.param("process", marks=pytest.mark.slow)])
def served(request: pytest.FixtureRequest) -> Any:
    """The in-process app, or the real server process (the slow half)."""
    if request.param == "in-process":
        return request.getfixturevalue("app_client")
    return ProcessClient(request.getfixturevalue("server").url)


def test_v1_named_objects(served: Any, model_dir: Path) -> None:
    x = rows(4)
    _, flagged = expected(model_dir, x)
    assert flagged.any() and not flagged.all(), "the rows should hold a flagged and a clean transaction"
    check_v1(post(served, V1, {"instances": named(x)}), model_dir, x)


def test_v1_ordered_lists(served: Any, model_dir: Path) -> None:
    x = rows(3, seed=1)
    check_v1(post(served, V1, {"instances": x.tolist()}), model_dir, x)


@pytest.mark.parametrize("path", [V1, "/predict"])
def test_flat_object(served: Any, model_dir: Path, path: str) -> None:
    x = rows(1, seed=2)
    check_v1(post(served, path, named(x)[0]), model_dir, x)


def test_v2_one_tensor(served: Any, model_dir: Path) -> None:
    x = rows(5, seed=3)
    tensor = {"name": "transactions", "shape": [5, 29], "datatype": "FP32", "data": x.tolist()}
    check_v2(post(served, V2, {"inputs": [tensor]}), model_dir, x)


def test_v2_one_tensor_flat_data(served: Any, model_dir: Path) -> None:
    x = rows(2, seed=4)
    tensor = {"name": "transactions", "shape": [2, 29], "datatype": "FP32", "data": x.reshape(-1).tolist()}
    check_v2(post(served, V2, {"inputs": [tensor]}), model_dir, x)


def test_v2_one_input_per_feature_in_any_order_without_content_type(served: Any, model_dir: Path) -> None:
    x = rows(3, seed=5)
    inputs = [
        {"name": name, "shape": [3], "datatype": "FP32", "data": x[:, i].tolist()}
        for i, name in reversed(list(enumerate(FEATURES)))
    ]
    check_v2(post(served, V2, data=orjson.dumps({"inputs": inputs}), headers={}), model_dir, x)


def test_v2_binary_tensor(served: Any, model_dir: Path) -> None:
    x = rows(4, seed=7)
    header = orjson.dumps(
        {"inputs": [{"name": "t", "shape": [4, 29], "datatype": "FP32", "parameters": {"binary_data_size": x.nbytes}}]}
    )
    response = post(
        served, V2, data=header + x.tobytes(), headers={"Inference-Header-Content-Length": str(len(header))}
    )
    check_v2(response, model_dir, x)


def test_explain_contributions_add_up_to_the_prediction(served: Any, model_dir: Path) -> None:
    x = rows(2, seed=6)
    check_explain(post(served, EXPLAIN, {"instances": named(x)}), model_dir, x)


@each_bad_input
def test_bad_input_gets_a_clear_4xx(
    served: Any, path: str, body: Any, headers: dict[str, str] | None, status: int, words: list[str]
) -> None:
    check_bad_input(served, path, body, headers, status, words)


@pytest.mark.parametrize("path", ["/v1/models/nope:predict", "/v2/models/nope/infer"])
def test_unknown_model_is_404(served: Any, path: str) -> None:
    response = post(served, path, {"instances": [GOOD]} if path.startswith("/v1") else {"inputs": []})
    assert response.status_code == 404, response.text
    assert "nope" in response.json()["error"]
