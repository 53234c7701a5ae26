"""The shadow challenger: a second model that scores the served rows off the request path, for the prediction log only.

``FRAUD_SHADOW_MODEL_URI`` names a model directory (the registry's ``challenger`` exported like the champion).
:class:`Shadow` loads it in its own thread (retried like the champion; the server's readiness never waits for it)
and scores, in another thread, the rows the champion scored: :meth:`Shadow.submit` only appends the champion's
:class:`serving.log_records.Scored` batch to a queue bounded in rows (a full queue drops them, counted as
``fraud_prediction_log_dropped_total{endpoint="shadow", reason="queue_full"}``). The thread stacks what is queued,
scores it with one call at the challenger's own threshold and hands the result to the prediction log with
endpoint ``shadow`` and the challenger's version. Nothing of it reaches a response.

The challenger takes the champion's features as scored (for a raw-transaction champion, the engineered ones): its
``feature_names`` must be the champion's, or its rows are dropped (``reason="features_differ"``) and one error line
says so.
"""

from __future__ import annotations

import logging
import threading
from typing import Any

import numpy as np

from fraud_detection.modeldir import ModelMetadata, fetch_model_dir, load_model_dir
from serving import scoring
from serving.log_records import Scored
from serving.prediction_log import INTERVAL, PredictionLog, log_metrics

log = logging.getLogger(__name__)


class Shadow:
    """Loads the challenger at ``uri`` and scores the champion's rows with it, off the request path."""

    def __init__(self, uri: str, prediction_log: PredictionLog, max_rows: int, threads: int, retry_seconds: float):
        self.uri = uri
        self.prediction_log = prediction_log
        self.max_rows = max_rows
        self.threads = threads
        self.retry_seconds = retry_seconds
        self.model: Any = None
        self.metadata: ModelMetadata | None = None
        self._pending: list[Scored] = []
        self._queued = 0
        self._lock = threading.Lock()
        self._stop = threading.Event()
        self._warned = False
        self._threads: list[threading.Thread] = []

    def start(self) -> None:
        """Start loading the challenger, and the scoring thread."""
        for target, name in ((self._load_until_ready, "shadow-loader"), (self._run, "shadow-scorer")):
            thread = threading.Thread(target=target, name=name, daemon=True)
            thread.start()
            self._threads.append(thread)

    def load(self) -> bool:
        """Fetch and load the challenger once; one error line on failure, never raises."""
        try:
            model, metadata = load_model_dir(fetch_model_dir(self.uri))
            model.set_threads(self.threads)
        except Exception as error:  # a missing or broken challenger leaves the champion serving, unshadowed
            log.error("shadow challenger not loaded from %s: %s: %s", self.uri, type(error).__name__, error)
            return False
        self.model, self.metadata = model, metadata
        log.info(
            "shadow challenger %s version %s (%s) loaded from %s (threshold %.4f)",
            metadata.model_name,
            metadata.model_version,
            metadata.family,
            self.uri,
            metadata.threshold,
        )
        return True

    def _load_until_ready(self) -> None:
        scoring.retry_load(self.load, self.retry_seconds, self._stop, f"{self.uri} (shadow)")

    def submit(self, scored: Scored) -> None:
        """Queue the champion's ``scored`` rows for the challenger, or drop them (counted) when the queue is full
        or no challenger is loaded yet."""
        n = len(scored.proba)
        if self.model is not None:
            with self._lock:
                if self._queued + n <= self.max_rows:
                    self._pending.append(scored)
                    self._queued += n
                    return
        reason = "queue_full" if self.model is not None else "not_loaded"
        log_metrics().dropped.labels("shadow", reason).inc(n)

    def _run(self) -> None:
        while not self._stop.wait(INTERVAL):
            with self._lock:
                work, self._pending, self._queued = self._pending, [], 0
            if work:
                self._score(work)

    def _score(self, work: list[Scored]) -> None:
        model, metadata = self.model, self.metadata
        assert model is not None and metadata is not None  # submit queues nothing before the load
        names = tuple(metadata.feature_names)
        usable = [scored for scored in work if tuple(scored.feature_names) == names]
        differ = sum(len(scored.proba) for scored in work) - sum(len(scored.proba) for scored in usable)
        if differ:
            log_metrics().dropped.labels("shadow", "features_differ").inc(differ)
            if not self._warned:
                self._warned = True
                log.error("shadow challenger %s takes other features than the champion: not scored", self.uri)
        if not usable:
            return
        x = usable[0].x if len(usable) == 1 else np.concatenate([scored.x for scored in usable])
        try:
            proba = scoring.predict_proba(model, x)
        except Exception as error:  # a failing challenger must not stop the thread
            log.error("shadow challenger failed to score %d rows: %s", len(x), error)
            log_metrics().dropped.labels("shadow", "unscored").inc(len(x))
            return
        decisions = proba >= metadata.threshold
        start = 0
        for scored in usable:
            end = start + len(scored.proba)
            self.prediction_log.submit(
                scored._replace(
                    endpoint="shadow",
                    model_version=metadata.model_version,
                    proba=proba[start:end],
                    decisions=decisions[start:end],
                )
            )
            start = end

    def stop(self) -> None:
        """Stop loading and scoring; rows still queued are dropped (counted, ``reason="unscored"``)."""
        self._stop.set()
        with self._lock:
            left, self._pending, self._queued = sum(len(s.proba) for s in self._pending), [], 0
        if left:
            log_metrics().dropped.labels("shadow", "unscored").inc(left)
