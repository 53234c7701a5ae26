"""ASGI middleware in front of KServe's routes: request checks, the legacy ``/predict`` path, access logs.

* ``POST /predict`` and ``POST /explain`` (the paths older fraud APIs use) are routed to the V1 endpoints
  of the served model, so clients sending a flat feature object can switch unchanged.
* Inference requests without a ``Content-Type`` (V2 and binary CloudEvents excepted: Open Inference Protocol
  clients and Knative's KafkaSource may send none),
  with a non-JSON one, or with a ``Content-Length`` over
  the limit are refused here with a 400 / 413 naming the problem, before the body is read; a body that
  grows past the limit as it is read raises :class:`serving.errors.BodyTooLarge` (413). Statuses and
  bodies come from :mod:`serving.errors`.
* One log record per request (health, readiness and metrics probes excluded) with Cloud Logging's
  ``httpRequest`` field: the predictor's prediction record for scored requests, an access record
  otherwise. 4xx answers also count in ``fraud_invalid_requests`` and log the error message.
* Every inference request counts in ``fraud_requests{code}`` and ``fraud_request_duration_seconds``.

:class:`ServerSpan` gives the requests :class:`serving.app.FraudApp` answers directly the server span FastAPI's
native telemetry gives every other request.
"""

from __future__ import annotations

import functools
import logging
import time
from collections.abc import Awaitable, Callable, MutableMapping
from typing import Any

import orjson

from serving import telemetry
from serving.errors import BodyTooLarge, error_body, status_for
from serving.payload import PayloadError

Scope = MutableMapping[str, Any]
Message = MutableMapping[str, Any]
Receive = Callable[[], Awaitable[Message]]
Send = Callable[[Message], Awaitable[None]]
ASGIApp = Callable[[Scope, Receive, Send], Awaitable[None]]

access_log = logging.getLogger(telemetry.ACCESS_LOGGER)
prediction_log = logging.getLogger(telemetry.PREDICTION_LOGGER)

JSON_CONTENT_TYPES = frozenset(
    {"application/json", "application/cloudevents+json", "application/ld+json", "application/octet-stream"}
)
_MAX_LOGGED_ERROR = 500


def _is_inference(method: str, path: str) -> bool:
    return method == "POST" and (path.endswith((":predict", ":explain", "/infer")))


class RequestMiddleware:
    """See the module docstring. ``model_name`` is the model the legacy paths go to."""

    def __init__(self, app: ASGIApp, model_name: str, max_body_bytes: int) -> None:
        self.app = app
        self.max_body_bytes = max_body_bytes
        self.legacy = {
            "/predict": f"/v1/models/{model_name}:predict",
            "/explain": f"/v1/models/{model_name}:explain",
        }

    @staticmethod
    async def _refuse(send: Send, error: Exception) -> None:
        body = error_body(error)
        await send(
            {
                "type": "http.response.start",
                "status": status_for(error),
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(body)).encode())],
            }
        )
        await send({"type": "http.response.body", "body": body})

    @staticmethod
    def _v2_content_type(scope: Scope) -> Scope:
        """Open Inference Protocol clients may omit Content-Type. A V2 body without one is JSON, unless it
        carries binary tensors (``Inference-Header-Content-Length``), which KServe reads as raw bytes."""
        names = {k.lower() for k, _ in scope.get("headers", [])}
        if b"content-type" in names or b"inference-header-content-length" in names:
            return scope
        return dict(scope, headers=[*scope.get("headers", []), (b"content-type", b"application/json")])

    def _check(self, scope: Scope) -> Exception | None:
        """The reason to refuse an inference request from its headers alone, if any."""
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        content_type = headers.get(b"content-type")
        if content_type is None and scope["path"].endswith("/infer"):
            # Open Inference Protocol clients (Triton's among them) send no Content-Type: see __call__.
            content_type = b"application/json"
        if content_type is None and b"ce-specversion" in headers:
            # A binary-mode CloudEvent (a Knative KafkaSource's delivery) need not say its data's type: KServe
            # reads the data as JSON.
            content_type = b"application/json"
        if content_type is None:
            return PayloadError(
                "missing Content-Type header: send the body as JSON with Content-Type: application/json"
            )
        media_type = content_type.split(b";", 1)[0].strip().lower().decode("latin-1")
        if media_type not in JSON_CONTENT_TYPES:
            return PayloadError(f"unsupported Content-Type {media_type!r}: send the body as JSON (application/json)")
        length = headers.get(b"content-length")
        if length is not None:
            try:
                size = int(length)
            except ValueError:
                return PayloadError(f"invalid Content-Length header {length.decode('latin-1')!r}")
            if size > self.max_body_bytes:
                return BodyTooLarge(f"request body of {size} bytes exceeds the limit of {self.max_body_bytes} bytes")
        return None

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        path = scope["path"]
        method = scope["method"]
        if method == "POST" and path in self.legacy:
            path = self.legacy[path]
            scope = dict(scope, path=path, raw_path=path.encode())
        if method == "POST" and path.endswith("/infer"):
            scope = self._v2_content_type(scope)
        started = time.perf_counter()
        state: dict[str, Any] = {"status": 500, "size": 0, "error": b""}

        async def send_and_watch(message: Message) -> None:
            if message["type"] == "http.response.start":
                state["status"] = message["status"]
            elif message["type"] == "http.response.body":
                body = message.get("body", b"")
                state["size"] += len(body)
                if state["status"] >= 400 and len(state["error"]) < _MAX_LOGGED_ERROR:
                    state["error"] += body
            await send(message)

        received = 0

        async def receive_within_limit() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > self.max_body_bytes:
                    raise BodyTooLarge(f"request body exceeds the limit of {self.max_body_bytes} bytes")
            return message

        record: dict[str, Any] = {}
        token = telemetry.REQUEST_RECORD.set(record)
        try:
            refusal = self._check(scope) if _is_inference(method, path) else None
            if refusal is not None:
                await self._refuse(send_and_watch, refusal)
            else:
                await self.app(scope, receive_within_limit, send_and_watch)
        finally:
            telemetry.REQUEST_RECORD.reset(token)
            seconds = time.perf_counter() - started
            if _is_inference(method, path):
                metrics = telemetry.counters()
                metrics.requests.labels(str(state["status"])).inc()
                metrics.request_seconds.observe(seconds)
            if not telemetry.QUIET_PATHS.match(path):
                self._log(scope, path, state, seconds, record)

    @staticmethod
    def _log(scope: Scope, path: str, state: dict[str, Any], seconds: float, record: dict[str, Any]) -> None:
        status = int(state["status"])
        headers = {k.lower(): v for k, v in scope.get("headers", [])}
        query = scope.get("query_string", b"")
        url = path + ("?" + query.decode("latin-1") if query else "")
        client = scope.get("client")
        http_request = {
            "requestMethod": scope["method"],
            "requestUrl": url,
            "status": status,
            "responseSize": str(state["size"]),
            "latency": f"{seconds:.6f}s",
            "protocol": f"HTTP/{scope.get('http_version', '1.1')}",
        }
        if b"content-length" in headers:
            http_request["requestSize"] = headers[b"content-length"].decode("latin-1")
        if b"user-agent" in headers:
            http_request["userAgent"] = headers[b"user-agent"].decode("latin-1")
        if client:
            http_request["remoteIp"] = client[0]
        # A scored request logs one line: the prediction record with its httpRequest.
        fields: dict[str, Any] = dict(record) if record else {"event": "request"}
        if b"x-request-id" in headers and "request_id" not in fields:
            fields["request_id"] = headers[b"x-request-id"].decode("latin-1")
        if status >= 400:
            error = bytes(state["error"])
            try:
                fields["error"] = orjson.loads(error).get("error", error.decode("utf-8", "replace"))
            except (orjson.JSONDecodeError, AttributeError):
                fields["error"] = error[:_MAX_LOGGED_ERROR].decode("utf-8", "replace")
        if 400 <= status < 500:
            telemetry.counters().invalid_requests.labels(str(status)).inc()
        level = logging.ERROR if status >= 500 else logging.WARNING if status >= 400 else logging.INFO
        (prediction_log if record else access_log).log(
            level,
            f"prediction {url} {status}" if record else f"{scope['method']} {url} {status}",
            extra={"http_request": http_request, "json_fields": fields},
        )


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


_SENSITIVE_QUERY_PARAMETERS = frozenset(
    {"X-Amz-Signature", "X-Amz-Credential", "X-Amz-Security-Token", "sig", "X-Goog-Signature"}
)


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

    def __init__(self, app: ASGIApp, method: str, route: str) -> None:
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

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
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

        async def send_and_end(message: Message) -> None:
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
