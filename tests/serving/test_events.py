"""Event deliveries on the V1 route: CloudEvents (binary and structured, as a Knative KafkaSource or Eventing
broker sends them) built with the ``cloudevents`` package, and Pub/Sub push-subscription envelopes."""

from __future__ import annotations

import base64
import json
from pathlib import Path

import numpy as np
from cloudevents.conversion import to_binary, to_structured
from cloudevents.http import CloudEvent, from_http
from fastapi.testclient import TestClient

from tests.serving.cases import NAME, V1, check_v1, named, rows

SOURCE = "/apis/v1/namespaces/fraud/kafkasources/transactions#transactions"


def _event(data: object) -> CloudEvent:
    return CloudEvent({"type": "dev.knative.kafka.event", "source": SOURCE, "subject": "partition:0#42"}, data)


def _scores(answer: dict) -> tuple[np.ndarray, np.ndarray]:
    predictions = answer["predictions"]
    return np.array([p["fraud_probability"] for p in predictions]), np.array([p["is_fraud"] for p in predictions])


def test_a_binary_cloudevent_is_scored_and_answered_as_a_cloudevent(app_client: TestClient, model_dir: Path) -> None:
    x = rows(1, seed=4)
    headers, body = to_binary(_event(named(x)[0]))  # a KafkaSource delivers the message value as the data
    response = app_client.post(V1, content=body, headers=headers)
    check_v1(response, model_dir, x)
    answer = from_http(dict(response.headers), response.content)
    assert answer["type"] == "io.kserve.inference.response"
    assert answer["source"].endswith(NAME)
    assert answer.data["predictions"][0]["model_version"]


def test_a_structured_cloudevent_carrying_instances_is_scored(app_client: TestClient, model_dir: Path) -> None:
    x = rows(3, seed=5)
    headers, body = to_structured(_event({"instances": named(x)}))
    assert headers["content-type"] == "application/cloudevents+json"
    response = app_client.post(V1, content=body, headers=headers)
    assert response.status_code == 200, response.text
    assert response.headers["content-type"].startswith("application/cloudevents+json")
    answer = from_http(dict(response.headers), response.content)
    data = answer.data if isinstance(answer.data, dict) else json.loads(answer.data)
    proba, flagged = _scores(data)
    assert proba.shape == (3,) and flagged.shape == (3,)


def test_a_cloudevent_with_a_bad_transaction_is_a_400_naming_the_field(app_client: TestClient) -> None:
    row = named(rows(1))[0]
    row["V4"] = "n/a"
    headers, body = to_binary(_event(row))
    response = app_client.post(V1, content=body, headers=headers)
    assert response.status_code == 400
    assert "V4: expected a number" in response.json()["error"]


def _push(data: bytes) -> dict:
    return {
        "message": {"data": base64.b64encode(data).decode(), "messageId": "1", "attributes": {"origin": "pos"}},
        "subscription": "projects/p/subscriptions/fraud-scoring",
    }


def test_a_pubsub_push_envelope_is_unwrapped_and_scored(app_client: TestClient, model_dir: Path) -> None:
    x = rows(2, seed=6)
    response = app_client.post(V1, json=_push(json.dumps({"instances": named(x)}).encode()))
    check_v1(response, model_dir, x)
    flat = app_client.post("/predict", json=_push(json.dumps(named(x)[0]).encode()))
    check_v1(flat, model_dir, x[:1])


def test_a_pubsub_envelope_without_json_data_is_a_400(app_client: TestClient) -> None:
    bad = app_client.post(V1, json=_push(b"not json"))
    assert bad.status_code == 400
    assert "message.data is not base64-encoded JSON" in bad.json()["error"]
    empty = app_client.post(V1, json={"message": {"messageId": "1"}, "subscription": "s"})
    assert empty.status_code == 400
    assert "message.data is missing" in empty.json()["error"]
