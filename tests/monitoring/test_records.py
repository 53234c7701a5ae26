"""The prediction-log record: KServe's logger CloudEvent, in the binary mode of the Kafka binding."""

from __future__ import annotations

import orjson
import pytest

from fraud_detection.monitoring import records
from tests.monitoring.traffic import scored


def test_a_record_travels_as_ce_headers_and_comes_back_equal() -> None:
    item = scored(1, endpoint="shadow")[0][0]
    message = records.encode(item)
    headers = dict(message.headers)
    assert message.key == b"tx-0"
    assert headers["ce_id"] == b"tx-0"
    assert headers["ce_type"] == b"org.kubeflow.serving.inference.response"
    assert headers["ce_specversion"] == b"1.0"
    assert headers["content-type"] == b"application/json"
    for extension, value in (
        ("inferenceservicename", b"fraud-detector"),
        ("namespace", b"fraud"),
        ("component", b"predictor"),
        ("endpoint", b"shadow"),
    ):
        assert headers[f"ce_{extension}"] == value
    assert records.decode(message.key, message.value, message.headers) == item


@pytest.mark.parametrize(
    ("change", "named"),
    [
        (lambda h: {k: v for k, v in h.items() if k != "ce_id"}, "ce_id"),
        (lambda h: {**h, "ce_type": b"org.kubeflow.serving.inference.request"}, "ce_type"),
        (lambda h: {**h, "ce_endpoint": b"blue"}, "endpoint"),
        (lambda h: {**h, "ce_id": b"another-id"}, "differs from data.transaction_id"),
    ],
)
def test_a_wrong_record_is_refused_naming_what_is_wrong(change, named: str) -> None:  # type: ignore[no-untyped-def]
    message = records.encode(scored(1)[0][0])
    with pytest.raises(records.RecordError, match=named):
        records.decode(message.key, message.value, change(dict(message.headers)))


def test_a_probability_outside_0_1_is_refused() -> None:
    message = records.encode(scored(1)[0][0])
    value = orjson.dumps({**orjson.loads(message.value), "probability": 7})
    with pytest.raises(records.RecordError, match=r"data\.probability: Input should be less than or equal to 1"):
        records.decode(message.key, value, message.headers)
