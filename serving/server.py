"""Run the model server process: process-wide set-up, then uvicorn with one or several workers.

:func:`run` is what ``python -m serving`` and ``fraud serve`` end in (through :func:`serving.main.serve`).
Per process it sets up the structured logs and the tracer provider (:mod:`serving.telemetry`), builds the
app (:func:`serving.app.create_app`) and freezes the heap (:mod:`serving.heap`). With ``FRAUD_WORKERS`` > 1
uvicorn starts that many worker processes, each building its own app with :func:`worker_app` from the
``FRAUD_*`` environment, sharing a Prometheus multiprocess directory so that ``/metrics`` adds them all up.
"""

from __future__ import annotations

import contextlib
import logging
import os
import sys
import tempfile
from collections.abc import Iterator
from typing import TYPE_CHECKING, Any

from serving import heap, telemetry
from serving.app import create_app
from serving.settings import ServingSettings

if TYPE_CHECKING:
    from fastapi import FastAPI
    from opentelemetry.sdk.trace import TracerProvider

log = logging.getLogger(__name__)

KEEP_ALIVE_SECONDS = 65
"""Longer than the idle timeout of the proxies in front (Istio/Envoy, load balancers), as KServe sets it."""
GRACE_SECONDS = 30


def _build(settings: ServingSettings) -> tuple[FastAPI, TracerProvider | None]:
    """Logs, tracing and the app of this process; the heap frozen now and once the model is loaded."""
    telemetry.configure_logging(settings)
    provider = telemetry.configure_tracing(settings)
    app = create_app(settings, on_model_loaded=heap.freeze, on_stopped=lambda: telemetry.flush(provider))
    heap.freeze()
    return app, provider


def worker_app() -> FastAPI:
    """The uvicorn factory of each worker process (``FRAUD_WORKERS`` > 1): settings from ``FRAUD_*``."""
    app, _ = _build(ServingSettings())
    return app


def run(settings: ServingSettings) -> int:
    """Serve until SIGINT/SIGTERM. Returns the process exit code."""
    import uvicorn

    # "auto" is decided once, here, for this process's stdout: workers inherit the decision, not the question.
    settings = settings.model_copy(update={"log_format": settings.resolved_log_format(sys.stdout)})
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
    # the same listener for one process and for several: no uvicorn logging config or access log (ours is the
    # request log line), keep-alive and graceful-shutdown bounds
    listen: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_config": None,
        "access_log": False,
        "timeout_keep_alive": KEEP_ALIVE_SECONDS,
        "timeout_graceful_shutdown": GRACE_SECONDS,
    }
    if settings.workers > 1:
        os.environ.update(settings.to_env())
        with _shared_metrics_dir():
            uvicorn.run(f"{__name__}:worker_app", factory=True, workers=settings.workers, **listen)
        return 0
    app, provider = _build(settings)
    config = uvicorn.Config(app, **listen)
    try:
        uvicorn.Server(config).run()
    finally:
        log.info("model server stopped")
        telemetry.flush(provider)
    return 0


@contextlib.contextmanager
def _shared_metrics_dir() -> Iterator[None]:
    """Prometheus multiprocess mode for the worker processes, so ``/metrics`` adds up all of them.

    Without it each worker keeps its own counters and a scrape sees whichever worker answered. The
    directory is ``PROMETHEUS_MULTIPROC_DIR`` when set, else a fresh temporary one removed at exit.
    """
    if os.environ.get(telemetry.MULTIPROC_ENV):
        yield
        return
    with tempfile.TemporaryDirectory(prefix="fraud-metrics-") as directory:
        os.environ[telemetry.MULTIPROC_ENV] = directory
        try:
            yield
        finally:
            del os.environ[telemetry.MULTIPROC_ENV]
