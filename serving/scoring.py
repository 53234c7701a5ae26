"""The scoring core shared by the HTTP predictor (:mod:`serving.predictor`) and the stream consumer (:mod:`streaming`).

Load a model directory, score a float32 feature matrix, count what was scored. No KServe and no web framework
is imported here, so the consumer scores with exactly the code the server uses without carrying the HTTP app.
Request bodies become feature matrices in :mod:`serving.payload`.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np

from fraud_detection.modeldir import ModelMetadata, fetch_model_dir, load_model_dir
from serving import telemetry


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
