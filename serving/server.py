"""Start the KServe model server with the fraud predictor: ``python -m serving.server [--port N ...]``.

The server is KServe's own REST server (its FastAPI app, V1 and V2 routes, ``/metrics``), with:

* the model loaded in a background thread, retried while it is missing or broken, so the process stays
  up and answers 503 on readiness instead of crash-looping;
* server readiness (``/v2/health/ready``) that is true only once the model is loaded;
* 400s with a message for every bad body (FastAPI's 422 validation errors included), never a 500;
* FastAPI's native OpenTelemetry server spans, structured JSON logs and Prometheus counters (:mod:`serving.telemetry`).
"""

from __future__ import annotations

import argparse
import contextlib
import gc
import logging
import os
import sys
import tempfile
import threading
import warnings
from collections.abc import Iterator, Sequence
from typing import Any

import orjson
from fastapi import Request, Response

from serving import telemetry
from serving.settings import ServingSettings

log = logging.getLogger(__name__)

MULTIPROC_ENV = "PROMETHEUS_MULTIPROC_DIR"


@contextlib.contextmanager
def _plain_argv() -> Iterator[None]:
    """KServe parses ``sys.argv`` when its model server module is imported; hide ours from it."""
    saved = sys.argv
    sys.argv = [saved[0] if saved else "serving"]
    try:
        yield
    finally:
        sys.argv = saved


def _validation_message(errors: Sequence[Any]) -> str:
    if any(error.get("type") == "json_invalid" for error in errors):
        return "request body is not valid JSON"
    # V2 bodies are validated as InferenceRequest or raw bytes: the bytes branch's complaint is noise.
    errors = [e for e in errors if "bytes" not in e.get("loc", ())] or list(errors)
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "InferenceRequest"))
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "invalid request body: " + "; ".join(parts) + more


def v2_infer(dataplane: Any) -> Any:
    """The V2 ``infer`` route, decoding JSON with orjson and :func:`serving.payload.parse_v2_body`.

    KServe's own route parses the body with the standard-library JSON decoder into a pydantic model and
    serialises the answer through FastAPI's encoder: for a 1,000-row tensor that is most of the request's
    time. This route builds the same ``InferRequest`` and goes through the same data plane and model; binary
    tensors (``Inference-Header-Content-Length``) are decoded by KServe as before.
    """
    from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER
    from kserve.errors import InvalidInput, ModelNotReady
    from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

    from serving.payload import PayloadError, parse_v2_body

    async def infer(model_name: str, request: Request) -> Response:
        if not await dataplane.model_ready(model_name, True):
            raise ModelNotReady(model_name)
        body = await request.body()
        headers = dict(request.headers.items())
        json_length = headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
        if json_length is not None:
            if not json_length.isdigit():
                raise PayloadError(f"{INFERENCE_CONTENT_LENGTH_HEADER} must be a byte count, got {json_length!r}")
            try:
                infer_request = InferRequest.from_bytes(body, int(json_length), model_name)
            except InvalidInput:
                raise
            except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
                # KServe's binary decoder indexes the JSON header without checking it.
                what = f"missing field {error}" if isinstance(error, KeyError) else str(error)
                raise PayloadError(f"invalid binary V2 request: {what}") from error
        else:
            try:
                decoded = orjson.loads(body)
            except orjson.JSONDecodeError as error:
                raise PayloadError(f"request body is not valid JSON: {error}") from error
            parsed = parse_v2_body(decoded)
            infer_request = InferRequest(
                model_name=model_name,
                infer_inputs=[InferInput(t.name, list(t.shape), t.datatype, t.data, {}) for t in parsed.inputs],
                request_id=parsed.request_id,
                parameters=parsed.parameters,
                request_outputs=[RequestedOutput(name, params or {}) for name, params in parsed.outputs] or None,
            )
        response, response_headers = await dataplane.infer(
            model_name=model_name, request=infer_request, headers=headers
        )
        response, encoded_headers = dataplane.encode(
            model_name=model_name, response=response, headers=headers, req_attributes={}
        )
        response_headers.update(encoded_headers)
        response_headers.pop("content-length", None)
        if isinstance(response, bytes):
            response_headers.pop("content-type", None)
            return Response(content=response, headers=response_headers)
        content = orjson.dumps(response, option=orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS)
        return Response(content=content, headers=response_headers, media_type="application/json")

    return infer


def build_server(settings: ServingSettings) -> tuple[Any, Any, Any]:
    """Build the model and KServe's REST server around it; nothing is loaded or listening yet.

    Returns ``(model, rest_server, app)``; ``rest_server.config`` is the uvicorn config to run, and ``app``
    the FastAPI app it serves.
    """
    with _plain_argv():
        import kserve.model_server as kserve_server
        from kserve.constants.constants import FASTAPI_APP_IMPORT_STRING, V2_ROUTE_PREFIX
        from kserve.model_repository import ModelRepository
        from kserve.protocol.dataplane import DataPlane
        from kserve.protocol.model_repository_extension import ModelRepositoryExtension
        from kserve.protocol.rest.server import RESTServer
        from timing_asgi import TimingMiddleware

        from serving.predictor import FraudModel
    from fastapi import FastAPI
    from fastapi.exceptions import FastAPIDeprecationWarning, RequestValidationError
    from fastapi.responses import Response

    # KServe's own V1 routes still return FastAPI's ORJSONResponse, which this FastAPI deprecates with a
    # warning on the first request of every process: a WARNING line in production logs about code that is
    # not ours. Silence exactly that one; our handlers below build their responses without it.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated", category=FastAPIDeprecationWarning)

    def json_error(status: int, message: str) -> Response:
        return Response(orjson.dumps({"error": message}), status_code=status, media_type="application/json")

    from serving.middleware import RequestMiddleware
    from serving.payload import PayloadError

    class ReadinessDataPlane(DataPlane):
        """Server readiness = every registered model is loaded (KServe's default is always true)."""

        async def ready(self) -> bool:
            registry = self.model_registry
            names = list(registry.get_models())
            return bool(names) and all([await registry.is_model_ready(name) for name in names])

    model = FraudModel(settings)
    registry = ModelRepository()
    registry.update(model)
    dataplane = ReadinessDataPlane(model_registry=registry)
    rest = RESTServer(
        FASTAPI_APP_IMPORT_STRING,
        dataplane,
        ModelRepositoryExtension(model_registry=registry),
        settings.port,
        workers=1,
        event_loop="auto",
    )
    rest.config.host = settings.host
    # KServe's REST server serves the module-level app ``kserve.model_server:app``. Put a fresh one there,
    # built with FastAPI's own OpenTelemetry settings (KServe's app cannot take them, and reusing it would
    # stack a second set of routes and middleware when one process builds two servers).
    app = FastAPI(
        title=kserve_server.app.title,
        version=kserve_server.app.version,
        docs_url=None,
        redoc_url=None,
        telemetry=telemetry.fastapi_telemetry(),
    )
    kserve_server.app = app
    # Registered before KServe's routes, so these answer first: see v2_infer and metrics.
    app.add_api_route(f"{V2_ROUTE_PREFIX}/models/{{model_name}}/infer", v2_infer(dataplane), methods=["POST"])
    app.add_api_route("/metrics", metrics, methods=["GET"])
    rest.create_application()
    # KServe's TimingMiddleware only feeds its per-request "kserve.trace" timing lines, which the structured
    # prediction record replaces (and which are silenced): drop its cost from every request.
    app.user_middleware = [m for m in app.user_middleware if m.cls is not TimingMiddleware]

    async def payload_error(_: Any, error: Exception) -> Response:
        return json_error(400, str(error))

    async def validation_error(_: Any, error: Exception) -> Response:
        errors = error.errors() if isinstance(error, RequestValidationError) else []
        return json_error(400, _validation_message(list(errors)))

    app.add_exception_handler(PayloadError, payload_error)
    app.add_exception_handler(RequestValidationError, validation_error)
    app.add_middleware(RequestMiddleware, model_name=settings.model_name, max_body_bytes=settings.max_body_bytes)
    return model, rest, app


def _prepare(settings: ServingSettings) -> tuple[Any, Any, Any, threading.Event]:
    """Build the server, set up logs and tracing, start loading the model. Returns (app, rest, provider, stop)."""
    model, rest, app = build_server(settings)
    # After KServe's imports: its model server module configures logging when first used.
    telemetry.configure_logging(settings)
    provider = telemetry.configure_tracing(settings)
    stop = threading.Event()
    _freeze_heap()

    def load() -> None:
        if model.load_until_ready(stop):
            _freeze_heap()

    threading.Thread(target=load, name="model-loader", daemon=True).start()
    return app, rest, provider, stop


def _freeze_heap() -> None:
    """Move every object alive now (imports, app, model) out of the garbage collector's view.

    KServe's imports leave ~200,000 tracked objects; without this, each full collection walks them all
    (hundreds of milliseconds on a small pod) and stalls every request in flight.
    """
    gc.collect()
    gc.freeze()


def create_app() -> Any:
    """App factory for multi-process serving (``FRAUD_WORKERS`` > 1): each worker builds its own server.

    Settings come from the ``FRAUD_*`` environment, which :func:`run` fills from the command line.
    """
    app, _, _, _ = _prepare(ServingSettings())
    return app


def run(settings: ServingSettings) -> int:
    """Serve until SIGINT/SIGTERM. Returns the process exit code."""
    import uvicorn

    telemetry.configure_logging(settings)
    log.info(
        "serving model %r from %s on http://%s:%d with %d worker(s) (V1 /v1/models/%s:predict, V2 /v2/models/%s/infer)",
        settings.model_name,
        settings.model_uri,
        settings.host,
        settings.port,
        settings.workers,
        settings.model_name,
        settings.model_name,
    )
    if settings.workers > 1:
        os.environ.update(settings_to_env(settings))
        with _shared_metrics_dir():
            uvicorn.run(
                f"{__name__}:create_app",
                factory=True,
                host=settings.host,
                port=settings.port,
                workers=settings.workers,
                log_config=None,
                timeout_keep_alive=65,
            )
        return 0
    _, rest, provider, stop = _prepare(settings)
    try:
        uvicorn.Server(rest.config).run()
    finally:
        stop.set()
        if provider is not None:
            provider.shutdown()
        log.info("model server stopped")
    return 0


@contextlib.contextmanager
def _shared_metrics_dir() -> Iterator[None]:
    """Prometheus multiprocess mode for the worker processes, so ``/metrics`` adds up all of them.

    Without it each worker keeps its own counters and a scrape sees whichever worker answered. The
    directory is ``PROMETHEUS_MULTIPROC_DIR`` when set, else a fresh temporary one removed at exit.
    """
    if os.environ.get(MULTIPROC_ENV):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="fraud-metrics-") as directory:
        os.environ[MULTIPROC_ENV] = directory
        try:
            yield
        finally:
            del os.environ[MULTIPROC_ENV]


async def metrics(request: Request) -> Response:
    """``GET /metrics``: KServe's handler, adding up every worker's values in multiprocess mode."""
    from prometheus_client import REGISTRY, CollectorRegistry, exposition, multiprocess

    registry = REGISTRY
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    encoder, content_type = exposition.choose_encoder(request.headers.get("accept", ""))
    return Response(content=encoder(registry), headers={"content-type": content_type})


def settings_to_env(settings: ServingSettings) -> dict[str, str]:
    """``FRAUD_*`` variables that rebuild ``settings`` in another process."""
    env = {}
    for key, value in settings.model_dump().items():
        if value is not None:
            env[f"FRAUD_{key.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
    return env


def parser() -> argparse.ArgumentParser:
    """Command-line options; each overrides the matching ``FRAUD_*`` setting."""
    p = argparse.ArgumentParser(prog="python -m serving.server", description=__doc__.splitlines()[0])
    p.add_argument("--model-uri", help="model directory: local path, gs:// prefix or /mnt/models")
    p.add_argument("--model-name", help="name in the endpoint paths (default fraud-detector)")
    p.add_argument("--host", help="address to listen on (default 0.0.0.0)")
    p.add_argument("--port", type=int, help="HTTP port (default 8080)")
    p.add_argument("--workers", type=int, help="uvicorn worker processes (default 1)")
    p.add_argument("--tracing", choices=["otlp", "console", "none"], dest="tracing_exporter")
    p.add_argument("--otlp-endpoint")
    p.add_argument("--log-level")
    return p


_OPTION_KEYS = ("model_uri", "model_name", "host", "port", "workers", "tracing_exporter", "otlp_endpoint", "log_level")


def settings_from_args(args: argparse.Namespace) -> ServingSettings:
    """Environment settings, overridden by the options that were given."""
    overrides = {key: getattr(args, key, None) for key in _OPTION_KEYS}
    return ServingSettings(**{k: v for k, v in overrides.items() if v is not None})


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point: parse options, build the settings, serve."""
    args = parser().parse_args(argv)
    return run(settings_from_args(args))


if __name__ == "__main__":
    sys.exit(main())
