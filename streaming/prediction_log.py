"""The stream scorer's prediction log: one record per scored transaction, as the model server writes them.

The records, the queue and the sender are the server's (:mod:`serving.prediction_log`): KServe's InferenceLogger
CloudEvent (``org.kubeflow.serving.inference.response``, binary content mode, keyed by the transaction id) with
the model version, the endpoint, the features as scored, the probability, the decision and the message's trace
id. The settings are the server's too (``FRAUD_PREDICTION_LOG_BOOTSTRAP_SERVERS``, ``..._TOPIC``,
``..._ENDPOINT``, ``..._QUEUE_ROWS``, ``..._TIMEOUT_SECONDS``); empty brokers = no log. The records' ``component``
is :data:`COMPONENT`, so they can be told from the predictor's.

The scoring loop calls :meth:`StreamLog.submit` once per scored batch: it queues the batch's arrays as they are and
returns; the log's thread encodes and sends. A full queue or a broker that is down drops records, counted in
``fraud_prediction_log_dropped_total`` on the scorer's ``/metrics``; scoring never waits for the log. A batch
scored again (its results were not acknowledged, or the scorer died before its commit) is logged again: the
records are at least once, as the results are, with the same transaction id.
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import TYPE_CHECKING

import numpy as np

from serving.log_records import Scored, Source
from serving.prediction_log import PredictionLog, log_metrics
from streaming import messages

if TYPE_CHECKING:
    from confluent_kafka import Message

    from serving.scoring import LoadedModel
    from streaming.settings import StreamSettings

COMPONENT = "stream-scorer"
"""The records' ``component`` (the predictor's are ``predictor``)."""
CLOSE_SECONDS = 5.0
"""On a stop, how long the records still queued may take to reach the broker; the rest are dropped, counted."""


def trace_id(traceparent: str | None) -> str:
    """The trace id of a W3C ``traceparent`` header (``00-<32 hex>-<16 hex>-<flags>``), or ``""`` when there is
    none or it is malformed."""
    if not traceparent:
        return ""
    parts = traceparent.split("-")
    found = parts[1].lower() if len(parts) == 4 else ""
    if len(found) != 32 or found == "0" * 32:
        return ""
    try:
        int(found, 16)
    except ValueError:
        return ""
    return found


def trace_ids(records: Sequence[Message], positions: Sequence[int]) -> list[str] | None:
    """The trace id of each scored message (by its position in the batch), or None when no message has headers."""
    headers = [records[position].headers() for position in positions]
    if not any(headers):
        return None
    return [trace_id(messages.header(h, messages.TRACEPARENT)) if h else "" for h in headers]  # type: ignore[arg-type]


class StreamLog:
    """The scorer's prediction log, off when ``prediction_log_bootstrap_servers`` is empty (then every call is a
    no-op). Its thread starts with the first batch; :meth:`close` sends what is queued, briefly."""

    def __init__(self, settings: StreamSettings) -> None:
        self.endpoint = settings.prediction_log_endpoint
        self.log: PredictionLog | None = None
        self._started = False
        if settings.prediction_log_bootstrap_servers:
            self.log = PredictionLog(
                {"bootstrap.servers": settings.prediction_log_bootstrap_servers},
                settings.prediction_log_topic,
                Source(settings.inference_service or settings.model_name, settings.namespace, COMPONENT),
                settings.prediction_log_queue_rows,
                settings.prediction_log_timeout_seconds,
            )
            log_metrics().dropped.labels(self.endpoint, "queue_full")  # the counters show from the start, at 0
            log_metrics().sent.labels(self.endpoint)

    def submit(
        self,
        model: LoadedModel,
        records: Sequence[Message],
        decoded: messages.Batch,
        proba: np.ndarray,
        decisions: np.ndarray,
    ) -> None:
        """Queue one record per scored row of ``decoded`` (``records`` are the batch's messages, for their trace
        context). Never blocks beyond a short lock, never raises for a full queue or a missing broker."""
        if self.log is None or not decoded.ids:
            return
        if not self._started:
            self.log.start()
            self._started = True
        metadata = model.metadata
        self.log.submit(
            Scored(
                self.endpoint,
                metadata.model_version,
                metadata.feature_names,
                decoded.x,
                proba,
                decisions,
                decoded.ids,
                0,
                time.time_ns() // 1000,
                trace_ids(records, decoded.positions),
            )
        )

    def close(self, timeout: float = CLOSE_SECONDS) -> None:
        """Send the records still queued within ``timeout`` seconds; those left are dropped (counted)."""
        if self.log is not None and self._started:
            self.log.close(timeout)
