"""The scoring core shared by the HTTP predictor (:mod:`serving.predictor`) and the stream consumer (:mod:`streaming`).

Load a model directory, score a float32 feature matrix, count what was scored. No KServe and no web framework
is imported here, so the consumer scores with exactly the code the server uses without carrying the HTTP app.
Request bodies become feature matrices in :mod:`serving.payload`.
"""

from __future__ import annotations

import logging
import threading
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import numpy as np
import tenacity

from fraud_detection.modeldir import ModelMetadata, fetch_model_dir, load_model_dir
from serving import telemetry

log = logging.getLogger(__name__)

MAX_RETRY_SECONDS = 300.0
"""The longest wait between two attempts to load a model directory."""


@dataclass(frozen=True)
class LoadedModel:
    """A model of any family (:class:`fraud_detection.families.models.FamilyModel`) with its metadata (family,
    threshold, version), as loaded from one model directory."""

    model: Any
    metadata: ModelMetadata


def load_model(uri: str, threads: int, model_name: str) -> LoadedModel:
    """Fetch and load the model directory at ``uri`` (any family), scoring with ``threads`` threads.

    Sets the ``fraud_model_ready`` and ``fraud_model_info`` gauges of ``model_name``.

    Raises:
        Exception: whatever the storage or the model directory raised (``ModelDirError`` names the file).
    """
    try:
        model, metadata = load_model_dir(fetch_model_dir(uri))
        model.set_threads(threads)
    except Exception:
        telemetry.model_loaded(model_name, None)
        raise
    telemetry.model_loaded(model_name, metadata.model_version)
    return LoadedModel(model=model, metadata=metadata)


def predict_proba(model: Any, x: np.ndarray) -> np.ndarray:
    """Fraud probabilities of the rows of ``x`` (``[N, 29]`` float32, :data:`fraud_detection.schema.FEATURES` order)."""
    return np.asarray(model.predict_proba(x), dtype=np.float32)


def record_scores(model_name: str, version: str, proba: np.ndarray, decisions: np.ndarray) -> int:
    """Count scored rows, flagged rows and the score distribution; returns the number flagged."""
    flagged = int(decisions.sum())
    metrics = telemetry.counters()
    metrics.predictions.labels(model_name, version).inc(len(proba))
    if flagged:
        metrics.flagged.labels(model_name, version).inc(flagged)
    telemetry.observe_scores(model_name, proba)
    return flagged


def retry_load(load: Callable[[], bool], first_wait: float, stop: threading.Event, what: str) -> bool:
    """Call ``load`` until it returns True, waiting ``first_wait`` seconds, then twice as long each time (capped at
    :data:`MAX_RETRY_SECONDS`).

    Returns True once loaded; False when ``stop`` is set (no attempt is made after it) or, with ``first_wait``
    0, after one failed attempt (``what`` names the model in the log line that says retries are off).
    """
    if first_wait <= 0:
        if load():
            return True
        log.error("model %s stays not ready: retries are off (FRAUD_LOAD_RETRY_SECONDS=0)", what)
        return False

    def pause(seconds: float) -> None:  # wakes up as soon as stop is set
        stop.wait(seconds)

    retrying = tenacity.Retrying(
        retry=tenacity.retry_if_result(lambda loaded: not loaded),
        stop=lambda state: stop.is_set(),
        wait=tenacity.wait_exponential(multiplier=first_wait, max=MAX_RETRY_SECONDS),
        sleep=pause,
        before_sleep=lambda state: log.info("retrying model load in %.1fs", state.upcoming_sleep),
        retry_error_callback=lambda state: False,
    )
    return bool(retrying(lambda: not stop.is_set() and load()))
