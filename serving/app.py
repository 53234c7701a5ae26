"""The model server's ASGI app: :func:`create_app` builds it, ready to serve or to drive in-process.

The app is KServe's REST server, assembled from KServe's own parts around the fraud model:

* KServe's model registry and data plane, with server readiness (``/v2/health/ready``) true only once the
  model is loaded (:class:`FraudDataPlane`; KServe's default is always true);
* KServe's V1 and V2 routes (``register_v1_endpoints``/``register_v2_endpoints``), with two routes of ours
  registered first: the orjson V2 ``infer`` route and ``/metrics`` summed across workers (:mod:`serving.routes`);
* one error table for every route (:mod:`serving.errors`) and the request middleware
  (:mod:`serving.middleware`: legacy ``/predict``, header and size checks, access and prediction logs);
* single predictions (the V1 ``:predict`` path and ``/predict``) answered by the same middleware and KServe's
  V1 handler steps without FastAPI's routing (:class:`FraudApp`).

Why a FastAPI app of our own rather than KServe's module-level ``kserve.model_server:app``: FastAPI's native
OpenTelemetry (``FastAPI(telemetry=...)``) is set when the app is constructed, and a factory must give a
fresh app per call (KServe's would gather a second set of routes each time). KServe's ``RESTServer`` is not
used either: all it adds is that module-level app, its timing middleware (whose ``kserve.trace`` lines the
prediction record replaces) and a uvicorn config, which :mod:`serving.server` makes itself.

The model is loaded in a background thread started by the app's lifespan (:class:`ModelLoader`), retried
while it is missing or broken: the process is live and answers 503 on readiness until then. The lifespan also
starts and stops the prediction log and the shadow challenger when the settings ask for them
(:mod:`serving.prediction_log`, :mod:`serving.challenger`).
"""

from __future__ import annotations

import logging
import threading
import warnings
from collections.abc import AsyncIterator, Callable
from contextlib import asynccontextmanager
from importlib import metadata

from fastapi import FastAPI
from fastapi.exceptions import FastAPIDeprecationWarning
from kserve.model_repository import ModelRepository
from kserve.protocol.dataplane import DataPlane
from kserve.protocol.model_repository_extension import ModelRepositoryExtension
from kserve.protocol.rest.v1_endpoints import register_v1_endpoints
from kserve.protocol.rest.v2_endpoints import register_v2_endpoints

from serving import errors, routes, telemetry
from serving.middleware import ASGIApp, Receive, RequestMiddleware, Scope, Send, ServerSpan
from serving.predictor import FraudModel
from serving.settings import ServingSettings

log = logging.getLogger(__name__)


class FraudDataPlane(DataPlane):
    """KServe's data plane, with server readiness = every registered model is loaded."""

    async def ready(self) -> bool:
        registry = self.model_registry
        names = list(registry.get_models())
        return bool(names) and all([await self.model_ready(name) for name in names])

    async def model_ready(self, model_name: str, disable_predictor_health_check: bool = False) -> bool:
        """Loaded; and, for the probes (not for each request), the model's dependencies answer (its feature store)."""
        ready = await super().model_ready(model_name, disable_predictor_health_check)
        model = self.model_registry.get_model(model_name)
        if not ready or disable_predictor_health_check or not isinstance(model, FraudModel):
            return bool(ready)
        return await model.dependencies_ready()


class ModelLoader:
    """Loads the model in a background thread (:meth:`FraudModel.load_until_ready`) from app startup.

    ``on_loaded`` runs in that thread after a successful load. :meth:`stop` ends the retries.
    """

    def __init__(self, model: FraudModel, on_loaded: Callable[[], None] | None = None) -> None:
        self.model = model
        self.on_loaded = on_loaded
        self._stop = threading.Event()

    def start(self) -> None:
        threading.Thread(target=self._load, name="model-loader", daemon=True).start()

    def stop(self) -> None:
        self._stop.set()

    def _load(self) -> None:
        if self.model.load_until_ready(self._stop) and self.on_loaded is not None:
            self.on_loaded()


class FraudApp(FastAPI):
    """FastAPI, with the single-prediction paths (the V1 ``:predict`` path of the served model and the legacy
    ``/predict``) answered by a direct chain instead of FastAPI's routing and per-request telemetry.

    The chain is the same work in the same order: the server span FastAPI's telemetry would make
    (:class:`serving.middleware.ServerSpan`), the same request middleware, and KServe's V1 handler step for step
    (:class:`serving.routes.V1Predict`). Every other request goes through FastAPI as before. Measured with
    py-spy under load, FastAPI's routing, dependency solving and telemetry wrapper took about 40 % of a
    worker's time on a single-row request (docs/serving.md, "Where a request's time goes").
    """

    direct: dict[str, ASGIApp]
    """Path -> the ASGI app answering POSTs to it (set by :func:`create_app`)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            direct = self.direct.get(scope["path"])
            if direct is not None:
                await direct(scope, receive, send)
                return
        await super().__call__(scope, receive, send)


def _prediction_log(settings: ServingSettings, model: FraudModel) -> None:
    """Give ``model`` the prediction log and the shadow challenger its settings ask for (started by the lifespan)."""
    if not settings.prediction_log_bootstrap_servers:
        if settings.shadow_model_uri:
            log.warning("FRAUD_SHADOW_MODEL_URI is set but the prediction log is off: the shadow is not loaded")
        return
    from serving.log_records import Source
    from serving.prediction_log import PredictionLog

    model.prediction_log = PredictionLog(
        {"bootstrap.servers": settings.prediction_log_bootstrap_servers},
        settings.prediction_log_topic,
        Source(settings.inference_service or settings.model_name, settings.namespace),
        settings.prediction_log_queue_rows,
        settings.prediction_log_timeout_seconds,
    )
    if settings.shadow_model_uri:
        from serving.challenger import Shadow

        model.shadow = Shadow(
            settings.shadow_model_uri,
            model.prediction_log,
            settings.shadow_queue_rows,
            settings.predict_threads,
            settings.load_retry_seconds,
        )


@asynccontextmanager
async def _lifespan(app: FastAPI) -> AsyncIterator[None]:
    loader: ModelLoader = app.state.loader
    model: FraudModel = app.state.model
    loader.start()
    if model.prediction_log is not None:
        model.prediction_log.start()
    if model.shadow is not None:
        model.shadow.start()
    try:
        yield
    finally:
        loader.stop()
        if model.shadow is not None:
            model.shadow.stop()
        if model.prediction_log is not None:
            model.prediction_log.close()
        if app.state.on_stopped is not None:
            app.state.on_stopped()


def create_app(
    settings: ServingSettings,
    on_model_loaded: Callable[[], None] | None = None,
    on_stopped: Callable[[], None] | None = None,
) -> FastAPI:
    """The model server app for ``settings``. Nothing is loaded until the app starts (its lifespan).

    ``app.state`` holds ``model`` (the :class:`FraudModel`), ``dataplane`` and ``loader``.
    ``on_model_loaded`` runs once the model is loaded (the server freezes the heap there); ``on_stopped`` once the
    app has stopped serving (the server sends the spans and log lines still queued: a worker process ends
    without running exit handlers).
    Process-wide set-up (logs, tracing) is not done here but in :mod:`serving.server`.
    """
    # KServe's V1 routes return FastAPI's ORJSONResponse, which this FastAPI deprecates with a warning on
    # the first request of every process: a WARNING line in production logs about code that is not ours.
    warnings.filterwarnings("ignore", message="ORJSONResponse is deprecated", category=FastAPIDeprecationWarning)
    model = FraudModel(settings)
    _prediction_log(settings, model)
    registry = ModelRepository()
    registry.update(model)
    dataplane = FraudDataPlane(model_registry=registry)
    extension = ModelRepositoryExtension(model_registry=registry)
    app = FraudApp(
        title="fraud-detection model server",
        version=metadata.version("kserve"),
        docs_url=None,
        redoc_url=None,
        telemetry=telemetry.fastapi_telemetry(),
        lifespan=_lifespan,
    )
    app.state.model = model
    app.state.dataplane = dataplane
    app.state.loader = ModelLoader(model, on_model_loaded)
    app.state.on_stopped = on_stopped
    routes.register(app)
    app.add_api_route("/", dataplane.live, methods=["GET"])
    register_v1_endpoints(app, dataplane, extension)
    register_v2_endpoints(app, dataplane, extension)
    errors.install(app)
    app.add_middleware(RequestMiddleware, model_name=settings.model_name, max_body_bytes=settings.max_body_bytes)
    predict = ServerSpan(
        RequestMiddleware(
            routes.V1Predict(dataplane, settings.model_name),
            model_name=settings.model_name,
            max_body_bytes=settings.max_body_bytes,
        ),
        "POST",
        "/v1/models/{model_name}:predict",
    )
    app.direct = {f"/v1/models/{settings.model_name}:predict": predict, "/predict": predict}
    return app
