"""Tracing end to end: spans reach a real OTLP receiver, and log lines carry the same trace id."""

from __future__ import annotations

import secrets
from pathlib import Path
from typing import Any

import pytest
import requests

from fraud_detection.schema import FEATURES
from tests.serving.conftest import MODEL_VERSION, OtlpReceiver, ServerProcess

pytestmark = pytest.mark.slow

PREDICT = "/v1/models/fraud-detector:predict"
BODY = {"instances": [dict.fromkeys(FEATURES, 0.25)]}


def attributes(span: Any) -> dict[str, Any]:
    out = {}
    for kv in span.attributes:
        value = kv.value
        out[kv.key] = getattr(value, value.WhichOneof("value"))
    return out


def log_lines_of_trace(server: ServerProcess, trace_id: str) -> list[dict[str, Any]]:
    return [r for r in server.log_records() if r.get("logging.googleapis.com/trace", "").endswith(trace_id)]


def test_traceparent_continues_the_callers_trace(server: ServerProcess, otlp_receiver: OtlpReceiver) -> None:
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{parent}-01", "X-Request-Id": "traced-1"}
    response = requests.post(server.url + PREDICT, json=BODY, headers=headers, timeout=10)
    assert response.status_code == 200

    spans = otlp_receiver.spans_of_trace(trace_id, at_least=2)
    names = {s.name for s in spans}
    assert "predict" in names, names
    server_span = next(s for s in spans if s.parent_span_id.hex() == parent)
    assert any(s.parent_span_id == server_span.span_id for s in spans if s.name == "predict")
    # FastAPI's own server span, named after the route; no per-operation spans besides ours.
    assert server_span.name == "POST /v1/models/{model_name}:predict"
    assert attributes(server_span)["http.route"] == "/v1/models/{model_name}:predict"
    assert attributes(server_span)["http.response.status_code"] == 200
    assert sorted(s.name for s in otlp_receiver.spans_of_trace(trace_id, timeout=1.0, at_least=3)) == [
        "POST /v1/models/{model_name}:predict",
        "predict",
    ]
    predict_span = next(s for s in spans if s.name == "predict")
    assert attributes(predict_span) == {"model.name": "fraud-detector", "model.version": MODEL_VERSION, "batch.size": 1}

    server.wait_until(lambda: bool(log_lines_of_trace(server, trace_id)), timeout=10, what="trace in logs")
    lines = log_lines_of_trace(server, trace_id)
    assert [line["event"] for line in lines] == ["prediction"], "one log line per scored request"
    line = lines[0]
    assert line["logging.googleapis.com/trace"] == f"projects/test-project/traces/{trace_id}"
    assert line["logging.googleapis.com/trace_sampled"] is True
    assert line["logging.googleapis.com/spanId"] == server_span.span_id.hex()
    assert line["request_id"] == "traced-1"
    assert line["httpRequest"]["status"] == 200
    assert line["httpRequest"]["requestUrl"] == PREDICT


def test_cloud_trace_header_continues_the_same_trace(server: ServerProcess, otlp_receiver: OtlpReceiver) -> None:
    trace_id = secrets.token_hex(16)
    parent_decimal = 1234567890123
    headers = {"X-Cloud-Trace-Context": f"{trace_id}/{parent_decimal};o=1"}
    response = requests.post(server.url + PREDICT, json=BODY, headers=headers, timeout=10)
    assert response.status_code == 200

    spans = otlp_receiver.spans_of_trace(trace_id, at_least=2)
    assert "predict" in {s.name for s in spans}
    assert any(s.parent_span_id.hex() == f"{parent_decimal:016x}" for s in spans)
    server.wait_until(lambda: bool(log_lines_of_trace(server, trace_id)), timeout=10, what="trace in logs")


def test_a_new_trace_is_started_without_incoming_context(server: ServerProcess, otlp_receiver: OtlpReceiver) -> None:
    response = requests.post(server.url + PREDICT, json=BODY, headers={"X-Request-Id": "untraced-caller"}, timeout=10)
    assert response.status_code == 200
    server.wait_until(
        lambda: any(r.get("request_id") == "untraced-caller" for r in server.log_records()), timeout=10, what="log"
    )
    record = next(r for r in server.log_records() if r.get("request_id") == "untraced-caller")
    trace_id = record["logging.googleapis.com/trace"].rsplit("/", 1)[-1]
    assert len(trace_id) == 32 and int(trace_id, 16) != 0
    assert otlp_receiver.spans_of_trace(trace_id, at_least=2)


def test_health_and_metrics_routes_are_not_traced(server: ServerProcess, otlp_receiver: OtlpReceiver) -> None:
    trace_id = secrets.token_hex(16)
    headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-01"}
    for path in ("/v2/health/ready", "/v2/health/live", "/metrics", "/v1/models/fraud-detector", "/"):
        assert requests.get(server.url + path, headers=headers, timeout=5).status_code == 200
    # A traced request afterwards proves the exporter is flushing; the probes must not be among its spans.
    marker = secrets.token_hex(16)
    requests.post(
        server.url + PREDICT, json=BODY, headers={"traceparent": f"00-{marker}-{secrets.token_hex(8)}-01"}, timeout=10
    )
    assert otlp_receiver.spans_of_trace(marker, at_least=2)
    assert otlp_receiver.spans_of_trace(trace_id, timeout=1.0) == []


def test_with_tracing_off_log_lines_still_carry_the_callers_trace(
    model_dir: Path, tmp_path: Path, otlp_receiver: OtlpReceiver
) -> None:
    env = {
        "FRAUD_TRACING_EXPORTER": "none",
        "FRAUD_OTLP_ENDPOINT": otlp_receiver.endpoint,
        "FRAUD_GCP_PROJECT": "test-project",
    }
    process = ServerProcess(str(model_dir), tmp_path / "server.log", env)
    try:
        process.wait_ready()
        trace_id = secrets.token_hex(16)
        headers = {"X-Cloud-Trace-Context": f"{trace_id}/42;o=1"}
        assert requests.post(process.url + PREDICT, json=BODY, headers=headers, timeout=10).status_code == 200
        process.wait_until(lambda: bool(log_lines_of_trace(process, trace_id)), timeout=10, what="trace in logs")
        assert [line["event"] for line in log_lines_of_trace(process, trace_id)] == ["prediction"]
        assert otlp_receiver.spans_of_trace(trace_id, timeout=1.0) == [], "nothing is exported"
    finally:
        process.stop()
