"""Observability for the model server: structured logs, OpenTelemetry tracing and Prometheus counters.

* Logs: JSON lines on stdout in Cloud Logging's structured format, written by google-cloud-logging's
  :class:`StructuredLogHandler` (``severity``, ``message``, ``logging.googleapis.com/trace`` / ``spanId`` /
  ``trace_sampled`` taken from the current OpenTelemetry span, ``httpRequest``). KServe's and uvicorn's
  loggers are routed into it.
* Traces: an SDK tracer provider with the exporter chosen by settings (``otlp`` over gRPC, ``console``,
  ``none``), W3C ``traceparent`` plus Google's ``X-Cloud-Trace-Context`` extraction, and FastAPI's native
  OpenTelemetry support for the server span of each request (:func:`fastapi_telemetry`).
* Metrics: our counters on the default Prometheus registry beside KServe's histograms, served by
  ``/metrics`` (summed across workers, see :mod:`serving.routes`).

Nothing here runs at import; :mod:`serving.server` calls :func:`configure_logging` and :func:`configure_tracing`
once per process.
"""

from __future__ import annotations

import contextvars
import functools
import logging
import re
import sys
import traceback
from collections.abc import Awaitable, Callable, MutableMapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

if TYPE_CHECKING:
    from fastapi.telemetry import TelemetryConfig
    from opentelemetry.sdk.trace import TracerProvider
    from prometheus_client import Counter, Gauge, Histogram

    from serving.settings import ServingSettings

log = logging.getLogger(__name__)

PREDICTION_LOGGER = "serving.predictions"
REQUEST_RECORD: contextvars.ContextVar[dict[str, Any] | None] = contextvars.ContextVar("request_record", default=None)
"""Set by the request middleware: the predictor puts its prediction record there, and the middleware
writes it with the request's ``httpRequest`` as one log line when the answer has gone out."""
ACCESS_LOGGER = "serving.access"

# Paths that are probed often and carry no business: not traced, not access-logged. Health, readiness,
# metrics, model metadata and the root.
QUIET_PATHS = re.compile(r"^/(metrics|v2/health/.*|v2/models/[^/]+/ready|v1/models/[^/:]+|v2/models/[^/]+)?$")

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"
"""Set (by :mod:`serving.server`) when several worker processes share their Prometheus values."""


class _TracebackInMessage(logging.Filter):
    """Put a record's traceback into its message, where Error Reporting finds it.

    The structured handler drops ``exc_info``; without this a 500's log line would say what failed but
    not where. Client errors are never logged with a traceback (:mod:`serving.errors` logs only 5xx).
    """

    def filter(self, record: logging.LogRecord) -> bool:
        if not record.exc_info or record.exc_info[1] is None:
            return True
        text = "".join(traceback.format_exception(record.exc_info[1]))
        record.msg, record.args = f"{record.getMessage()} {text}".strip(), None
        record.exc_info = None
        record.exc_text = None
        return True


_TEXT_FIELDS = (
    ("batch_size", "rows {}"),
    ("flagged", "flagged {}"),
    ("max_score", "max score {}"),
    ("latency_ms", "{} ms"),
    ("model_version", "model v{}"),
    ("request_id", "request {}"),
    ("error", "error: {}"),
)


class TextFormatter(logging.Formatter):
    """One short line per record for a person at a terminal: time, level, message, and the few structured fields
    that matter (rows, flagged, latency, model version, error)."""

    def __init__(self) -> None:
        super().__init__("%(asctime)s %(levelname)-7s %(message)s", datefmt="%H:%M:%S")

    def format(self, record: logging.LogRecord) -> str:
        line = super().format(record)
        fields = getattr(record, "json_fields", None) or {}
        details = [template.format(fields[key]) for key, template in _TEXT_FIELDS if fields.get(key) is not None]
        return f"{line} ({', '.join(details)})" if details else line


_GCP_FIELDS = frozenset(
    {
        "severity",
        "httpRequest",
        "time",
        "timestamp",
        "timestampSeconds",
        "timestampNanos",
        "logging.googleapis.com/insertId",
        "logging.googleapis.com/labels",
        "logging.googleapis.com/operation",
        "logging.googleapis.com/sourceLocation",
        "logging.googleapis.com/spanId",
        "logging.googleapis.com/trace",
        "logging.googleapis.com/trace_sampled",
    }
)
"""Fields of the structured line that a record's own fields may not override (google-cloud-logging's list)."""


def _structured_handler(project: str | None) -> logging.Handler:
    """google-cloud-logging's :class:`StructuredLogHandler` writing the same fields, each line encoded once by orjson.

    The library builds a line from its record filter's three ``json.dumps`` calls, a ``json.dumps`` of the payload
    and a ``%`` template: about 60 µs a line, a tenth of a traced request's time. This one reads the same values
    (the record's ``json_fields``, ``http_request``, the current OpenTelemetry span, the logger name, the source
    line) and encodes them in one call: about 10 µs. Field names, their meaning and the one-time diagnostic
    line are the library's.
    """
    import collections.abc

    import orjson
    from google.cloud.logging_v2.handlers import StructuredLogHandler
    from opentelemetry import trace

    invalid = trace.INVALID_SPAN
    traces = f"projects/{project}/traces/" if project else ""

    class Handler(StructuredLogHandler):
        def format(self, record: logging.LogRecord) -> str:
            fields = getattr(record, "json_fields", None)
            if isinstance(record.msg, collections.abc.Mapping):
                payload = {**record.msg, **fields} if isinstance(fields, collections.abc.Mapping) else dict(record.msg)
            else:
                payload = dict(fields) if isinstance(fields, collections.abc.Mapping) else {}
                message = record.getMessage()
                if message != "None":
                    payload["message"] = message
            for key in _GCP_FIELDS.intersection(payload):
                del payload[key]
            span = trace.get_current_span()
            if span is invalid:
                trace_id, span_id, sampled = "", "", False
            else:
                context = span.get_span_context()
                trace_id = f"{traces}{context.trace_id:032x}"
                span_id, sampled = f"{context.span_id:016x}", context.trace_flags.sampled
            payload["severity"] = record.levelname
            payload["logging.googleapis.com/labels"] = {"python_logger": record.name} if record.name else {}
            payload["logging.googleapis.com/trace"] = trace_id
            payload["logging.googleapis.com/spanId"] = span_id
            payload["logging.googleapis.com/trace_sampled"] = sampled
            payload["logging.googleapis.com/sourceLocation"] = {
                "line": record.lineno,
                "file": record.pathname,
                "function": record.funcName,
            }
            payload["httpRequest"] = getattr(record, "http_request", None) or {}
            return orjson.dumps(payload, default=str, option=orjson.OPT_SERIALIZE_NUMPY).decode()

    handler = Handler(project_id=project, stream=sys.stdout)
    handler.filters.clear()  # the library's filter only prepares what format() above reads by itself
    return handler


def configure_logging(settings: ServingSettings) -> None:
    """Send every log record of this process to stdout: Cloud Logging structured JSON, or short text lines when
    ``settings.log_format`` says so (``auto``: text on a terminal)."""
    handler: logging.Handler
    if settings.resolved_log_format(sys.stdout) == "text":
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(TextFormatter())
    else:
        handler = _structured_handler(settings.gcp_project)
        handler.addFilter(_TracebackInMessage())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
    root.addHandler(handler)
    root.setLevel(settings.log_level.upper())
    # Library warnings (e.g. FastAPI deprecations) become structured lines too, not bare text on stderr.
    logging.captureWarnings(True)
    for name in ("kserve", "uvicorn", "uvicorn.error", "uvicorn.access", "kserve.trace"):
        child = logging.getLogger(name)
        child.handlers.clear()
        child.propagate = True
    # Our access log replaces uvicorn's; KServe's per-request timing lines duplicate the prediction record.
    logging.getLogger("uvicorn.access").setLevel(logging.WARNING)
    logging.getLogger("kserve.trace").setLevel(logging.WARNING)


def _otlp_exporter(settings: ServingSettings) -> Any:
    import grpc
    from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter

    endpoint = settings.otlp_endpoint
    google_auth = settings.otlp_google_auth
    if google_auth is None:
        google_auth = "telemetry.googleapis.com" in endpoint
    if google_auth:
        import google.auth
        from google.auth.transport.grpc import AuthMetadataPlugin
        from google.auth.transport.requests import Request

        credentials, _ = google.auth.default(scopes=["https://www.googleapis.com/auth/cloud-platform"])
        call_credentials = grpc.metadata_call_credentials(AuthMetadataPlugin(credentials, Request()))
        channel = grpc.composite_channel_credentials(grpc.ssl_channel_credentials(), call_credentials)
        headers = {"x-goog-user-project": settings.gcp_project} if settings.gcp_project else None
        return OTLPSpanExporter(endpoint=endpoint, credentials=channel, headers=headers)
    return OTLPSpanExporter(endpoint=endpoint, insecure=endpoint.startswith("http://"))


def configure_tracing(settings: ServingSettings) -> TracerProvider | None:
    """Install the global tracer provider and propagators chosen by ``settings``.

    Returns the provider (to flush it at shutdown), or None when tracing is off. Propagation reads
    W3C ``traceparent`` first and Google's ``X-Cloud-Trace-Context`` when there is no ``traceparent``.
    With tracing off nothing is recorded, but a caller's trace context is still read, so log lines keep
    the caller's trace id (Logs Explorer groups a request's lines across services by it).
    """
    from opentelemetry import propagate, trace
    from opentelemetry.propagators.cloud_trace_propagator import CloudTraceOneWayPropagator
    from opentelemetry.propagators.composite import CompositePropagator
    from opentelemetry.trace.propagation.tracecontext import TraceContextTextMapPropagator

    # Later propagators win: a traceparent overrides an X-Cloud-Trace-Context sent with it.
    propagate.set_global_textmap(CompositePropagator([CloudTraceOneWayPropagator(), TraceContextTextMapPropagator()]))
    from opentelemetry.sdk.resources import Resource
    from opentelemetry.sdk.trace import TracerProvider
    from opentelemetry.sdk.trace.export import BatchSpanProcessor, ConsoleSpanExporter
    from opentelemetry.sdk.trace.sampling import ALWAYS_OFF, ParentBased, TraceIdRatioBased

    if settings.tracing_exporter == "none":
        # A provider that records nothing: FastAPI's telemetry still continues the incoming context.
        trace.set_tracer_provider(TracerProvider(sampler=ALWAYS_OFF))
        return None

    resource = Resource.create({"service.name": settings.model_name, "service.namespace": "fraud-detection"})
    provider = TracerProvider(resource=resource, sampler=ParentBased(TraceIdRatioBased(settings.trace_sample_ratio)))
    exporter = _otlp_exporter(settings) if settings.tracing_exporter == "otlp" else ConsoleSpanExporter()
    provider.add_span_processor(BatchSpanProcessor(exporter))
    trace.set_tracer_provider(provider)
    log.info("tracing: exporting spans with %s to %s", settings.tracing_exporter, settings.otlp_endpoint)
    return provider


def is_quiet(scope: MutableMapping[str, Any]) -> bool:
    """True for probe requests (see :data:`QUIET_PATHS`): FastAPI's telemetry skips them."""
    return scope.get("type") == "http" and QUIET_PATHS.match(scope.get("path", "")) is not None


def fastapi_telemetry() -> TelemetryConfig:
    """The ``telemetry=`` settings of the FastAPI app: a server span per request, nothing more.

    FastAPI's native OpenTelemetry support follows the global tracer provider set by
    :func:`configure_tracing` and the global propagators (so ``traceparent`` and ``X-Cloud-Trace-Context``
    both continue a trace). Spans are named ``POST /v1/models/{model_name}:predict``. Per-operation spans
    (dependencies, serialisation), OTel metrics (Prometheus serves ours) and OTel log records (logs go to
    stdout as structured JSON) are off, and probes are not traced.
    """
    return {"tracing": True, "metrics": False, "logs": False, "operation_spans": False, "exclude": is_quiet}


_SCHEMA_URL = "https://opentelemetry.io/schemas/1.44.0"
"""The schema URL FastAPI's native telemetry gives its tracer (``fastapi.telemetry._asgi``)."""


@functools.lru_cache(maxsize=64)
def _server_attributes(host: bytes | None, server: tuple[str, int] | None, scheme: str) -> dict[str, Any]:
    """``server.address`` and ``server.port`` from the ``Host`` header, as FastAPI's telemetry reads them."""
    from urllib.parse import urlsplit

    if host is not None:
        try:
            url = urlsplit("//" + host.decode("latin-1"))
            address, port = url.hostname, url.port
        except ValueError:
            return {}
        if url.username is not None or url.path or url.query or url.fragment:
            return {}
        if port is None:
            port = {"http": 80, "https": 443}.get(scheme)
    else:
        address, port = server or (None, None)
    if address is None:
        return {}
    return {"server.address": address, "server.port": port} if port is not None else {"server.address": address}


_SENSITIVE_QUERY_PARAMETERS = frozenset({"X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "sig", "X-Goog-Signature"})


def _redacted_query(query: bytes) -> str:
    """The query string with signature parameters redacted, as FastAPI's telemetry records ``url.query``."""
    from urllib.parse import parse_qsl, urlencode

    pairs = parse_qsl(query.decode("latin-1"), keep_blank_values=True)
    return urlencode([(k, "REDACTED" if k in _SENSITIVE_QUERY_PARAMETERS else v) for k, v in pairs])


_EXTRACT_ONLY_FIELDS = frozenset({"x-cloud-trace-context"})
"""Headers read by propagators that never write them (Google's one-way Cloud Trace propagator lists no fields)."""


class ServerSpan:
    """ASGI wrapper giving every request to one known route the server span FastAPI's native telemetry would give it.

    Same tracer name and schema, span name (``POST /v1/models/{model_name}:predict``), kind and attributes
    (``http.route``, ``http.response.status_code``, ``url.path``, ``server.*`` ...), the caller's ``traceparent`` or
    ``X-Cloud-Trace-Context`` continued, the span current while the request runs and ended after the last body
    byte is sent. What it leaves out is FastAPI's per-request bookkeeping for routes it does not know in advance
    (route matching, an operation-span context, a request-telemetry object): :class:`serving.app.FraudApp` sends
    the single-prediction routes here and every other request through FastAPI's telemetry.
    """

    def __init__(self, app: Callable[..., Awaitable[None]], method: str, route: str) -> None:
        from fastapi import __version__ as fastapi_version
        from opentelemetry import propagate, trace

        self.app = app
        self.method = method
        self.route = route
        self.name = f"{method} {route}"
        self._version = fastapi_version
        self._propagate = propagate
        self._trace = trace
        self._provider: Any = None
        self._tracer: Any = None

    def _tracer_now(self) -> Any:
        provider = self._trace.get_tracer_provider()
        if provider is not self._provider:
            self._tracer = provider.get_tracer("fastapi", self._version, schema_url=_SCHEMA_URL)
            self._provider = provider
        return self._tracer

    def _parent(self, headers: list[tuple[bytes, bytes]]) -> Any:
        """The caller's trace context, or None (a new trace) when no propagation header was sent."""
        fields = self._propagate.get_global_textmap().fields | _EXTRACT_ONLY_FIELDS
        carrier = {}
        for key, value in headers:
            name = key.decode("latin-1").lower()
            if name in fields:
                carrier[name] = value.decode("latin-1")
        return self._propagate.extract(carrier) if carrier else None

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        from opentelemetry import context as otel_context
        from opentelemetry.trace import SpanKind, StatusCode

        headers = scope.get("headers", [])
        host = next((value for key, value in headers if key.lower() == b"host"), None)
        scheme = scope.get("scheme", "http")
        attributes: dict[str, Any] = {"url.scheme": scheme, "http.request.method": self.method}
        if scope.get("http_version"):
            attributes["network.protocol.version"] = scope["http_version"]
        attributes.update(_server_attributes(host, tuple(scope["server"]) if scope.get("server") else None, scheme))
        attributes["url.path"] = scope["path"]
        if scope.get("query_string"):
            attributes["url.query"] = _redacted_query(scope["query_string"])
        attributes["http.route"] = self.route
        parent = self._parent(headers)
        span = self._tracer_now().start_span(self.name, context=parent, kind=SpanKind.SERVER, attributes=attributes)
        token = otel_context.attach(self._trace.set_span_in_context(span, parent))
        status: list[int] = []

        def finish(error: BaseException | None = None) -> None:
            if not span.is_recording():
                return
            if status:
                span.set_attribute("http.response.status_code", status[0])
            if error is not None or not status or status[0] >= 500:
                kind = type(error) if error is not None else None
                span.set_attribute(
                    "error.type",
                    (f"{kind.__module__}.{kind.__qualname__}" if kind.__module__ != "builtins" else kind.__qualname__)
                    if kind is not None
                    else str(status[0] if status else "incomplete_response"),
                )
                span.set_status(StatusCode.ERROR)
            span.end()

        async def send_and_end(message: MutableMapping[str, Any]) -> None:
            if message["type"] == "http.response.start":
                status.append(message["status"])
            await send(message)
            if message["type"] == "http.response.body" and not message.get("more_body", False):
                finish()

        try:
            await self.app(scope, receive, send_and_end)
        except BaseException as error:
            finish(error)
            raise
        finally:
            if span.is_recording():
                finish(RuntimeError("Incomplete ASGI response"))
            otel_context.detach(token)


SCORE_BUCKETS = (0.01, 0.05, 0.1, 0.2, 0.3, 0.4, 0.5, 0.6, 0.7, 0.8, 0.9, 0.95, 0.99, 1.0)
"""Upper bounds of the ``fraud_score`` histogram (the score distribution panel)."""
LATENCY_BUCKETS = (0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1.0, 2.5, 5.0, 10.0)


@dataclass(frozen=True)
class Counters:
    """Our Prometheus metrics, shared by the model server and the stream consumer (KServe adds its own
    latency histograms on the server's registry)."""

    predictions: Counter
    flagged: Counter
    invalid_requests: Counter
    requests: Counter
    request_seconds: Histogram
    scores: Histogram
    model_ready: Gauge
    model_info: Gauge


@functools.cache
def counters() -> Counters:
    """The process's metrics, registered on first use."""
    from prometheus_client import Counter, Gauge, Histogram

    return Counters(
        predictions=Counter("fraud_predictions", "Rows scored", ["model_name", "model_version"]),
        flagged=Counter("fraud_flagged", "Rows at or above the decision threshold", ["model_name", "model_version"]),
        invalid_requests=Counter("fraud_invalid_requests", "Requests refused with a 4xx", ["status"]),
        requests=Counter("fraud_requests", "Inference requests answered, by HTTP status code", ["code"]),
        request_seconds=Histogram(
            "fraud_request_duration_seconds",
            "Inference request latency, first byte in to last byte out",
            buckets=LATENCY_BUCKETS,
        ),
        scores=Histogram("fraud_score", "Fraud probabilities scored", ["model_name"], buckets=SCORE_BUCKETS),
        model_ready=Gauge(
            "fraud_model_ready",
            "1 once the model is loaded and scoring, 0 while it is not",
            ["model_name"],
            multiprocess_mode="max",
        ),
        model_info=Gauge(
            "fraud_model_info",
            "The model version being served (value 1)",
            ["model_name", "model_version"],
            multiprocess_mode="max",
        ),
    )


def observe_many(histogram: Any, values: Any) -> None:
    """``histogram.observe(v)`` for every ``v`` of the numpy array ``values``, in one pass per bucket.

    prometheus_client observes one value at a time (a lock and a Python call each); at tens of thousands of rows a
    second that is a sizeable share of the scoring time. The counts per bucket are computed with numpy and added to
    the histogram's bucket and sum values; a client without those attributes gets the one-at-a-time loop.
    """
    import numpy as np

    bounds = getattr(histogram, "_upper_bounds", None)
    buckets = getattr(histogram, "_buckets", None)
    total = getattr(histogram, "_sum", None)
    if bounds is None or buckets is None or total is None or len(bounds) != len(buckets):
        for value in values.tolist():
            histogram.observe(value)
        return
    # A value lands in the first bucket whose upper bound is >= it (prometheus_client stores non-cumulative counts).
    counts = np.bincount(np.searchsorted(np.asarray(bounds), values, side="left"), minlength=len(bounds))
    for bucket, count in zip(buckets, counts.tolist(), strict=False):
        if count:
            bucket.inc(count)
    total.inc(float(np.sum(values, dtype=np.float64)))


def observe_scores(model_name: str, proba: Any) -> None:
    """Add every probability of ``proba`` to the ``fraud_score`` histogram."""
    observe_many(counters().scores.labels(model_name), proba)


_LOADED: set[str] = set()
"""Models this process has loaded at least once."""


def model_loaded(model_name: str, version: str | None) -> None:
    """Record a load: ``version`` now serves (``fraud_model_ready`` 1), or None: the load failed.

    A failed reload keeps a model that is already serving ready; only a process with no model reports 0.
    """
    metrics = counters()
    if version is None:
        if model_name not in _LOADED:
            metrics.model_ready.labels(model_name).set(0)
        return
    _LOADED.add(model_name)
    metrics.model_info.clear()
    metrics.model_info.labels(model_name, version).set(1)
    metrics.model_ready.labels(model_name).set(1)
