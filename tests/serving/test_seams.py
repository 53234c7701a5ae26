"""The predictor's three seams, each called alone on a real model: parse, score, shape the answer."""

from __future__ import annotations

import asyncio
from pathlib import Path

import numpy as np
import pytest
from kserve import InferInput, InferRequest

from fraud_detection.schema import FEATURES
from serving.payload import PayloadError
from serving.predictor import FraudModel, Rows, Scores
from serving.settings import ServingSettings
from tests.serving.cases import expected, named, rows
from tests.serving.conftest import MODEL_VERSION


@pytest.fixture(scope="module")
def model(model_dir: Path) -> FraudModel:
    loaded = FraudModel(ServingSettings(model_uri=str(model_dir), max_batch_rows=50, load_retry_seconds=0))
    assert loaded.load()
    return loaded


def test_preprocess_reads_v1_flat_and_v2_bodies_into_the_same_rows(model: FraudModel) -> None:
    x = rows(3)
    v2 = InferRequest("fraud-detector", [InferInput("t", [3, len(FEATURES)], "FP32", x.tolist())], request_id="r2")
    parsed = [
        model.preprocess({"instances": named(x)}, {"x-request-id": "r1"}),
        model.preprocess({"instances": x.tolist()}),
        model.preprocess(v2),
    ]
    for got in parsed:
        np.testing.assert_allclose(got.x, x, rtol=1e-6)
    assert parsed[0].request_id == "r1" and parsed[2].request_id == "r2"
    assert parsed[0].v2 is None and parsed[2].v2 is v2
    flat = model.preprocess(named(x)[0])
    np.testing.assert_allclose(flat.x, x[:1], rtol=1e-6)


def test_preprocess_refuses_a_bad_body_naming_the_field(model: FraudModel) -> None:
    body = named(rows(2))
    del body[1]["V7"]
    with pytest.raises(PayloadError, match="V7"):
        model.preprocess({"instances": body})
    with pytest.raises(PayloadError, match="JSON"):
        model.preprocess(b"V1=1")


def test_predict_scores_at_the_threshold_and_postprocess_shapes_v1_and_v2(model: FraudModel, model_dir: Path) -> None:
    x = rows(4)
    scores = asyncio.run(model.predict(Rows(x, "r", 0.0)))
    proba, flagged = expected(model_dir, x)
    np.testing.assert_allclose(scores.proba, proba, rtol=1e-5, atol=1e-7)
    assert scores.decisions.tolist() == flagged.tolist()

    headers: dict[str, str] = {}
    v1 = model.postprocess(scores, None, headers)
    assert isinstance(v1, dict) and headers == {"x-request-id": "r"}
    assert [p["is_fraud"] for p in v1["predictions"]] == flagged.tolist()
    assert {p["model_version"] for p in v1["predictions"]} == {MODEL_VERSION}

    v2_request = InferRequest("fraud-detector", [InferInput("t", [4, 29], "FP32", x.tolist())])
    v2 = model.postprocess(Scores(Rows(x, "r", 0.0, v2=v2_request), scores.proba, scores.decisions, "7", 0.5))
    assert not isinstance(v2, dict)
    assert [o.name for o in v2.outputs] == ["fraud_probability", "is_fraud"]
    assert model.postprocess({"explanations": []}) == {"explanations": []}
