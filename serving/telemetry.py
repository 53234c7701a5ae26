"""Observability for the model server: structured logs, OpenTelemetry tracing and Prometheus counters.

* Logs: JSON lines on stdout in Cloud Logging's structured format, the fields of google-cloud-logging's
  :class:`StructuredLogHandler` (``severity``, ``message``, ``logging.googleapis.com/trace`` / ``spanId`` /
  ``trace_sampled`` taken from the current OpenTelemetry span, ``httpRequest``), encoded and written off the
  event loop by :mod:`serving.jsonlog`. KServe's and uvicorn's loggers are routed into it.
* Traces: an SDK tracer provider with the exporter chosen by settings (``otlp`` over gRPC with
  :mod:`serving.spans`' encoder, ``console``, ``none``), W3C ``traceparent`` plus Google's
  ``X-Cloud-Trace-Context`` extraction, and FastAPI's native OpenTelemetry support for the server span of each
  request (:func:`fastapi_telemetry`).
* Metrics: our counters on the default Prometheus registry beside KServe's histograms, served by
  ``/metrics`` (summed across workers, see :mod:`serving.routes`).

Nothing here runs at import; :mod:`serving.server` calls :func:`configure_logging` and :func:`configure_tracing`
once per process.
"""

from __future__ import annotations

import bisect
import contextvars
import functools
import logging
import re
import sys
import traceback
from collections.abc import MutableMapping
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


def configure_logging(settings: ServingSettings) -> None:
    """Send every log record of this process to stdout: Cloud Logging structured JSON, or short text lines when
    ``settings.log_format`` says so (``auto``: text on a terminal)."""
    from serving import jsonlog

    handler: logging.Handler
    if settings.resolved_log_format(sys.stdout) == "text":
        handler = logging.StreamHandler(sys.stdout)
        handler.setFormatter(TextFormatter())
    else:
        handler = jsonlog.structured_handler(settings.gcp_project)
        handler.addFilter(_TracebackInMessage())
    root = logging.getLogger()
    for existing in list(root.handlers):
        root.removeHandler(existing)
        if isinstance(getattr(existing, "stream", None), jsonlog.BackgroundWriter):
            existing.close()
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

    from serving.spans import FastOTLPSpanExporter as OTLPSpanExporter

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


SPAN_QUEUE = 32_768
"""Ended spans waiting for export. The SDK's default (2,048) is under a second of two spans per request at
2,500 requests a second, and a full queue drops spans: this one absorbs a receiver that stalls for seconds."""
SPAN_BATCH = 1_024
"""Spans per OTLP call: fewer, larger calls cost less per span on the exporter thread."""
SPAN_DELAY_MS = 1_000
"""The longest a span waits before its batch is sent, when fewer than :data:`SPAN_BATCH` are queued."""


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
    provider.add_span_processor(
        BatchSpanProcessor(
            exporter, max_queue_size=SPAN_QUEUE, max_export_batch_size=SPAN_BATCH, schedule_delay_millis=SPAN_DELAY_MS
        )
    )
    trace.set_tracer_provider(provider)
    log.info("tracing: exporting spans with %s to %s", settings.tracing_exporter, settings.otlp_endpoint)
    return provider


def flush(provider: TracerProvider | None) -> None:
    """Send the spans and write the log lines still queued (a stopping server; worker processes skip exit handlers)."""
    if provider is not None:
        provider.force_flush()
    for handler in logging.getLogger().handlers:
        handler.flush()


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


_FEW = 16
"""Up to this many values are observed with a plain loop (a single-row request's score) rather than numpy."""


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
    if len(values) <= _FEW:  # numpy's per-call overhead is most of the cost for a request's few rows
        items = values.tolist()
        for value in items:
            index = bisect.bisect_left(bounds, value)
            if index < len(buckets) and value == value:  # a NaN lands in no bucket, as below
                buckets[index].inc(1)
        total.inc(float(sum(items)))
        return
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
