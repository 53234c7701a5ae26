"""The direct OTLP encoder (:mod:`serving.spans`) gives the same request message as the SDK's encoder."""

from __future__ import annotations

from typing import Any

from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.common.trace_encoder import encode_spans
from opentelemetry.proto.collector.trace.v1.trace_service_pb2 import ExportTraceServiceRequest
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import ReadableSpan, TracerProvider
from opentelemetry.sdk.trace.export import SimpleSpanProcessor, SpanExporter, SpanExportResult
from opentelemetry.trace import NonRecordingSpan, SpanContext, SpanKind, Status, StatusCode, TraceFlags

from serving.spans import encode


class _Keep(SpanExporter):
    def __init__(self) -> None:
        self.spans: list[ReadableSpan] = []

    def export(self, spans: Any) -> SpanExportResult:
        self.spans.extend(spans)
        return SpanExportResult.SUCCESS


def _spans() -> list[ReadableSpan]:
    kept = _Keep()
    provider = TracerProvider(resource=Resource.create({"service.name": "fraud-detector", "replicas": 2}))
    provider.add_span_processor(SimpleSpanProcessor(kept))
    server = provider.get_tracer("fastapi", "0.165.0", schema_url="https://opentelemetry.io/schemas/1.44.0")
    remote = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, True, TraceFlags(1))
    parent = trace.set_span_in_context(NonRecordingSpan(remote))
    attributes: dict[str, Any] = {
        "url.path": "/predict",
        "server.port": 8080,
        "negative": -3,
        "ratio": 0.25,
        "ok": True,
    }
    with server.start_as_current_span("POST /predict", context=parent, kind=SpanKind.SERVER, attributes=attributes):
        predictor = provider.get_tracer("serving.predictor")
        with predictor.start_as_current_span("predict", attributes={"batch.size": 1, "model.version": "3"}):
            pass
        with predictor.start_as_current_span("explain", attributes={"features": ["V1", "Amount"]}) as span:
            span.add_event("slow", {"ms": 12.5})
            span.set_status(Status(StatusCode.ERROR, "model failed"))
    with server.start_as_current_span("root", kind=SpanKind.INTERNAL) as root:
        root.set_status(Status(StatusCode.OK))
    return kept.spans


def test_the_direct_encoding_parses_to_the_sdk_encoders_message() -> None:
    spans = _spans()
    assert len(spans) == 4
    direct = ExportTraceServiceRequest.FromString(encode(spans))
    assert direct == encode_spans(spans)
    assert encode(spans) == encode(spans), "cached attribute encodings give the same bytes"


def test_a_changed_span_changes_the_message() -> None:
    spans = _spans()
    other = _spans()
    assert ExportTraceServiceRequest.FromString(encode(spans)) != ExportTraceServiceRequest.FromString(encode(other))
