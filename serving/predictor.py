"""The KServe custom predictor: loads the serving model directory and scores V1, V2 and flat bodies.

Any model family the bake-off can promote is served (XGBoost, the MLP, their blend): the model directory
contract (:mod:`fraud_detection.modeldir`) loads it, and this module only calls its ``predict_proba`` and
``explain``. A model trained on raw transactions (its metadata has ``transactions``) takes the raw transaction's
source columns instead (:mod:`serving.raw_payload`) and gets its engineered features from the entities' stored
state (:mod:`serving.feature_store`) before scoring; the public-schema path is unchanged. With the prediction log
on, :meth:`FraudModel.predict` hands each scored batch to it (and to the shadow challenger), which only queues it.

Importing this module imports ``kserve``, whose model server module parses ``sys.argv`` when imported;
the entry point (:func:`serving.main.serve`) hides its own options from it first.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import random
import threading
import time
import uuid
from dataclasses import dataclass, replace
from typing import Any

import kserve
import numpy as np
from kserve import InferOutput, InferRequest, InferResponse
from opentelemetry import trace

from fraud_detection.features.online import Transaction
from fraud_detection.modeldir import ModelMetadata
from serving import scoring, telemetry
from serving.feature_store import FeatureLookup, store_opener
from serving.log_records import Scored
from serving.payload import PayloadError, TensorInput, parse_v1, parse_v2
from serving.prediction_log import PredictionLog
from serving.raw_payload import RawSchema, parse_v1_raw, parse_v2_raw
from serving.settings import ServingSettings

log = logging.getLogger(__name__)
prediction_log = logging.getLogger(telemetry.PREDICTION_LOGGER)

EXPLAIN_METHODS = {
    "xgboost": "tree-shap",
    "mlp": "deeplift-rescale (reference: training mean)",
    "blend": "weighted sum of the parts' tree-shap and deeplift-rescale",
}
"""How ``explain`` computes contributions for each family (named in every explain answer)."""

MAX_LOGGED_DECISIONS = 100
"""The prediction record lists each row's decision for batches up to this size (counts always)."""


def _tensor(infer_input: Any) -> TensorInput:
    """A KServe ``InferInput`` as a :class:`TensorInput` (binary tensors decoded to numpy)."""
    data = infer_input.data
    if getattr(infer_input, "_raw_data", None) is not None:
        try:
            data = infer_input.as_numpy()
        except Exception as error:  # KServe raises ValueError/InvalidInput for mismatched binary data
            raise PayloadError(f"input {infer_input.name!r}: unreadable binary tensor: {error}") from error
    return TensorInput(name=infer_input.name, shape=infer_input.shape, datatype=infer_input.datatype, data=data)


def _request_id(payload: Any, headers: dict[str, str] | None) -> str:
    """The caller's ``x-request-id``, else the V2 request's id, else a new one."""
    if headers and headers.get("x-request-id"):
        return headers["x-request-id"]
    if isinstance(payload, InferRequest) and payload.id:
        return str(payload.id)
    # A version-4 UUID from the random module (seeded from os.urandom, and again in every forked worker): uuid4()
    # makes a getrandom system call per request, which lets go of the interpreter lock while the lookup's threads
    # want it. 1.0 against 1.5 µs alone; about 10 µs less server CPU a request in alternated runs of both paths.
    return uuid.UUID(int=random.getrandbits(128), version=4).hex


def _log_id(payload: Any, headers: dict[str, str] | None, request_id: str) -> str:
    """The prefix of a public-schema row's transaction id in the prediction log (row ``i`` is ``<prefix>/<i>``):
    the body's ``id`` (V1 top level, V2), else the CloudEvent's ``ce-id`` header, else the request id."""
    if isinstance(payload, InferRequest) and payload.id:
        return str(payload.id)
    if isinstance(payload, dict) and "instances" in payload and payload.get("id") not in (None, ""):
        return str(payload["id"])
    if headers and headers.get("ce-id"):
        return headers["ce-id"]
    return request_id


@dataclass(frozen=True)
class Rows:
    """A parsed request (what :meth:`FraudModel.preprocess` gives): the feature matrix and who asked."""

    x: np.ndarray
    """``[N, F]`` float32 in the model's ``feature_names`` order (the public schema's 29); for raw transactions
    empty until :meth:`FraudModel.predict` or ``explain`` computes their features."""
    request_id: str
    started: float
    """``time.perf_counter()`` when parsing began (the prediction record's latency counts from it)."""
    v2: InferRequest | None = None
    """The V2 request, whose answer is two tensors; None for V1, flat and CloudEvents bodies."""
    transactions: tuple[Transaction, ...] = ()
    """Raw-transaction models only: the parsed transactions, in request order."""
    log_id: str = ""
    """Public-schema rows: the prefix of their transaction ids in the prediction log (:func:`_log_id`)."""


@dataclass(frozen=True)
class Scores:
    """What :meth:`FraudModel.predict` gives: each row's fraud probability and decision, and the model behind them."""

    rows: Rows
    proba: np.ndarray
    decisions: np.ndarray
    version: str
    threshold: float


class _Coalescer:
    """Score rows of requests that are in flight together with one model call.

    A single-row call costs about as much as a 100-row one (the per-call overhead dominates, for XGBoost's
    ``inplace_predict`` and for the network's matrix products alike), so under concurrent load the rows of
    every request that reaches :meth:`score` in the same event-loop turn are stacked and scored at once.
    Nothing waits: the batch is flushed by the next loop iteration, so a lone request is scored immediately.
    """

    def __init__(self, max_rows: int) -> None:
        self.max_rows = max_rows
        self._pending: list[tuple[np.ndarray, asyncio.Future[np.ndarray]]] = []
        self._model: Any = None
        self._scheduled = False

    async def score(self, model: Any, x: np.ndarray) -> np.ndarray:
        """The fraud probability of each row of ``x`` (float32), from ``model.predict_proba``."""
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        if self._pending and (self._model is not model or self._rows() + len(x) > self.max_rows):
            self._flush()
        self._model = model
        self._pending.append((x, future))
        if not self._scheduled:
            self._scheduled = True
            loop.call_soon(self._flush)
        return await future

    def _rows(self) -> int:
        return sum(len(x) for x, _ in self._pending)

    def _flush(self) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if not batch:
            return
        x = batch[0][0] if len(batch) == 1 else np.concatenate([item for item, _ in batch])
        try:
            proba = scoring.predict_proba(self._model, x)
        except Exception as error:  # every waiting request gets the failure (a 500: a model fault, not input)
            for _, future in batch:
                if not future.done():
                    future.set_exception(error)
            return
        start = 0
        for item, future in batch:
            if not future.done():
                future.set_result(proba[start : start + len(item)])
            start += len(item)


class FraudModel(kserve.Model):
    """Scores card transactions: fraud probability, decision at the model's threshold, model version.

    Ready only after :meth:`load` succeeded (KServe's ``Model.start``, which would mark it ready at once, is
    never called: :class:`serving.app.ModelLoader` loads it); until then the predict and ready routes answer 503.
    """

    def __init__(self, settings: ServingSettings) -> None:
        super().__init__(settings.model_name, return_response_headers=True)
        self.settings = settings
        self.model: Any = None
        """The loaded model (:class:`fraud_detection.families.models.FamilyModel`), None until loaded."""
        self.metadata: ModelMetadata | None = None
        self.load_error: str | None = None
        self.lookup: FeatureLookup | None = None
        """Raw-transaction models only: the feature lookup on the entity-state store."""
        self._raw_schema: RawSchema | None = None
        self._load_lock = threading.Lock()
        self._tracer = trace.get_tracer("serving.predictor")
        self._coalescer = _Coalescer(max_rows=max(settings.max_batch_rows, 1024))
        self.prediction_log: PredictionLog | None = None
        """The prediction log (set by :func:`serving.app.create_app` when brokers are configured)."""
        self.shadow: Any = None
        """The shadow challenger (:class:`serving.challenger.Shadow`), when one is configured."""

    # -- lifecycle -------------------------------------------------------------------------------------

    def load(self) -> bool:
        """Fetch and load the model directory once. Logs one clear line on failure; never raises."""
        uri = self.settings.model_uri
        with self._load_lock:
            started = time.perf_counter()
            try:
                loaded = scoring.load_model(uri, self.settings.predict_threads, self.name)
                self._use_transactions(loaded.metadata)
            except Exception as error:  # any storage, format or store-setting problem leaves it up and not ready
                self.ready = False
                self.load_error = f"{type(error).__name__}: {error}"
                log.error("model not loaded from %s: %s", uri, self.load_error)
                return False
            metadata = loaded.metadata
            self.model, self.metadata, self.load_error = loaded.model, metadata, None
            self.ready = True
        log.info(
            "model %s version %s (%s) loaded from %s in %.2fs (threshold %.4f, data version %s)",
            metadata.model_name,
            metadata.model_version,
            metadata.family,
            uri,
            time.perf_counter() - started,
            metadata.threshold,
            metadata.data_version or "-",
        )
        return True

    def _use_transactions(self, metadata: ModelMetadata) -> None:
        """Set up (or drop) the raw-transaction schema and feature lookup for a newly loaded model."""
        if self.lookup is not None:
            self.lookup.close()
        self.lookup, self._raw_schema = None, None
        inputs = metadata.transactions
        if inputs is None:
            return
        opener, where = store_opener(self.settings, inputs)
        self._raw_schema = RawSchema.of(inputs)
        self.lookup = FeatureLookup(inputs, opener, where, write=self.settings.feature_store_write)
        log.info(
            "raw-transaction model: %d engineered features, state in %s (%s)",
            len(inputs.features.names),
            where,
            "applied after scoring" if self.settings.feature_store_write else "read only",
        )

    async def dependencies_ready(self) -> bool:
        """Readiness beyond the loaded model: a raw-transaction model's feature store answers (the probes ask)."""
        return self.lookup is None or await self.lookup.ready()

    def load_until_ready(self, stop: threading.Event) -> bool:
        """Retry :meth:`load` with a doubling wait (from ``load_retry_seconds``, capped) until it works.

        Returns True once loaded, False if ``stop`` was set or retries are off (``load_retry_seconds=0``).
        """
        return scoring.retry_load(self.load, self.settings.load_retry_seconds, stop, self.name)

    # -- inference: KServe calls preprocess, then predict (or explain), then postprocess -------------------

    def preprocess(self, payload: Any, headers: dict[str, str] | None = None) -> Rows:
        """Parse and validate a V1, flat, CloudEvents (decoded by KServe) or V2 body into a feature matrix.

        Raises:
            ModelNotReady: no model is loaded yet (a 503).
            PayloadError: the body is not scorable; the message names the field or row at fault (a 400).
        """
        started = time.perf_counter()
        if self.metadata is None or self.model is None:
            raise kserve.errors.ModelNotReady(self.name, self.load_error or "")
        request_id = _request_id(payload, headers)
        max_rows = self.settings.max_batch_rows
        if self._raw_schema is not None:
            return self._raw_rows(payload, request_id, started)
        log_id = _log_id(payload, headers, request_id) if self.prediction_log is not None else request_id
        if isinstance(payload, InferRequest):
            x = parse_v2([_tensor(i) for i in payload.inputs], max_rows)
            return Rows(x, request_id, started, v2=payload, log_id=log_id)
        if isinstance(payload, bytes | str):
            raise PayloadError("request body must be JSON sent with Content-Type: application/json")
        return Rows(parse_v1(payload, max_rows), request_id, started, log_id=log_id)

    def _raw_rows(self, payload: Any, request_id: str, started: float) -> Rows:
        """Raw transactions (V2 columns, V1 rows or the flat object), features not yet computed."""
        schema, max_rows = self._raw_schema, self.settings.max_batch_rows
        assert schema is not None  # checked by the caller
        empty = np.empty((0, schema.width), dtype=np.float32)
        if isinstance(payload, InferRequest):
            transactions = parse_v2_raw([_tensor(i) for i in payload.inputs], schema, request_id, max_rows)
            return Rows(empty, request_id, started, v2=payload, transactions=tuple(transactions))
        if isinstance(payload, bytes | str):
            raise PayloadError("request body must be JSON sent with Content-Type: application/json")
        transactions = parse_v1_raw(payload, schema, request_id, max_rows)
        return Rows(empty, request_id, started, transactions=tuple(transactions))

    async def _with_features(self, rows: Rows, write: bool = True) -> Rows:
        """``rows`` with the features of its raw transactions, read from the store off the event loop; ``write``:
        apply them to the store too when ``feature_store_write`` is on (scoring does, explaining does not)."""
        if not rows.transactions:
            return rows
        if self.lookup is None:  # a model swapped for a public-schema one between preprocess and predict
            raise kserve.errors.ModelNotReady(self.name, "the model changed while the request was parsed")
        # Untraced (tracing off, or sampled out): no child span, which would record nothing and cost about 6 µs of
        # the event loop.
        span = (
            self._tracer.start_as_current_span("features", attributes={"batch.size": len(rows.transactions)})
            if trace.get_current_span().is_recording()
            else contextlib.nullcontext()
        )
        with span:
            return replace(rows, x=await self.lookup.features(rows.transactions, write))

    def validate(self, payload: Any) -> Any:
        """Nothing more to check: :meth:`preprocess` validated the body (KServe's check expects a raw body)."""
        return payload

    async def predict(
        self, rows: Rows, headers: dict[str, str] | None = None, response_headers: dict[str, str] | None = None
    ) -> Scores:
        """Score every row at the model's threshold, count it and write the prediction record."""
        model, metadata = self.model, self.metadata
        if metadata is None or model is None:  # unloaded models are refused by preprocess; this is for mypy
            raise kserve.errors.ModelNotReady(self.name, self.load_error or "")
        version = metadata.model_version
        rows = await self._with_features(rows)
        with self._tracer.start_as_current_span(
            "predict",
            attributes={"model.name": self.name, "model.version": version, "batch.size": int(rows.x.shape[0])},
        ):
            proba = await self._coalescer.score(model, rows.x)
            scores = Scores(rows, proba, proba >= metadata.threshold, version, float(metadata.threshold))
            self._record(scores)
            if self.prediction_log is not None:
                self._log(scores, metadata)
        return scores

    def _log(self, scores: Scores, metadata: ModelMetadata) -> None:
        """Hand the scored rows to the prediction log, and to the shadow challenger (both only queue them)."""
        assert self.prediction_log is not None  # checked by the caller
        rows = scores.rows
        ids = tuple(t.tx_id for t in rows.transactions) if rows.transactions else rows.log_id
        scored = Scored(
            self.settings.prediction_log_endpoint,
            scores.version,
            metadata.feature_names,
            rows.x,
            scores.proba,
            scores.decisions,
            ids,
            trace.get_current_span().get_span_context().trace_id,
            time.time_ns() // 1000,
        )
        self.prediction_log.submit(scored)
        if self.shadow is not None:
            self.shadow.submit(scored)

    def _record(self, scores: Scores) -> None:
        """Count the scores and log the prediction record (through the request middleware when it is there)."""
        proba, decisions = scores.proba, scores.decisions
        flagged = scoring.record_scores(self.name, scores.version, proba, decisions)
        record: dict[str, Any] = {
            "event": "prediction",
            "request_id": scores.rows.request_id,
            "model_name": self.name,
            "model_version": scores.version,
            "batch_size": len(proba),
            "max_score": round(float(proba.max()), 6),
            "flagged": flagged,
            "latency_ms": round((time.perf_counter() - scores.rows.started) * 1000, 3),
        }
        if len(proba) <= MAX_LOGGED_DECISIONS:
            record["decisions"] = decisions.astype(int).tolist()
        holder = telemetry.REQUEST_RECORD.get()
        if holder is not None:  # the request middleware logs it with the request's httpRequest
            holder.update(record)
        else:
            prediction_log.info("prediction", extra={"json_fields": record})

    def postprocess(
        self,
        result: Scores | dict[str, Any],
        headers: dict[str, str] | None = None,
        response_headers: dict[str, str] | None = None,
    ) -> dict[str, Any] | InferResponse:
        """The answer: two output tensors for V2, ``{"predictions": [...]}`` for V1 and flat bodies; an explain
        answer passes through. Sets the ``x-request-id`` response header."""
        if not isinstance(result, Scores):
            return result
        rows = result.rows
        if response_headers is not None:
            response_headers["x-request-id"] = rows.request_id
        proba, decisions, version = result.proba, result.decisions, result.version
        if rows.v2 is not None:
            return InferResponse(
                response_id=rows.request_id,
                model_name=self.name,
                model_version=version,
                infer_outputs=[
                    InferOutput("fraud_probability", [len(proba)], "FP32", data=proba),
                    InferOutput("is_fraud", [len(proba)], "BOOL", data=decisions),
                ],
                parameters={"threshold": result.threshold},
                use_binary_outputs=rows.v2.use_binary_outputs,
                requested_outputs=rows.v2.request_outputs,
            )
        return {
            "predictions": [
                {"fraud_probability": p, "is_fraud": d, "model_version": version}
                for p, d in zip(proba.tolist(), decisions.tolist(), strict=True)
            ],
            "model_name": self.name,
            "model_version": version,
            "threshold": result.threshold,
        }

    async def explain(self, rows: Rows, headers: dict[str, str] | None = None) -> dict[str, Any]:
        """Per-row feature contributions in log-odds, by the model's family: exact TreeSHAP for XGBoost,
        DeepLIFT against the training mean for the MLP, their weighted sum for the blend
        (:mod:`fraud_detection.families.models`).

        For each row, ``base_value + sum(contributions)`` is the model's log-odds of fraud, exactly. Contributions
        are named by the model's features: for a raw-transaction model the engineered ones (``card_count_1h``, ...),
        whose values each row also lists under ``features``.
        """
        metadata = self.metadata
        if metadata is None or self.model is None:
            raise kserve.errors.ModelNotReady(self.name, self.load_error or "")
        rows = await self._with_features(rows, write=False)
        x, names = rows.x, metadata.feature_names
        with self._tracer.start_as_current_span(
            "explain",
            attributes={"model.name": self.name, "model.version": metadata.model_version, "batch.size": len(x)},
        ):
            contributions, base = self.model.explain(x)
            proba = np.asarray(self.model.predict_proba(x), dtype=np.float64)
        explanations: list[dict[str, Any]] = [
            {
                "fraud_probability": float(p),
                "is_fraud": bool(p >= metadata.threshold),
                "base_value": float(b),
                "contributions": dict(zip(names, row.tolist(), strict=True)),
            }
            for p, b, row in zip(proba, base, contributions, strict=True)
        ]
        if rows.transactions:
            for explanation, transaction, values in zip(explanations, rows.transactions, x.tolist(), strict=True):
                explanation["tx_id"] = transaction.tx_id
                explanation["features"] = dict(zip(names, values, strict=True))
        return {
            "explanations": explanations,
            "units": "log-odds",
            "method": EXPLAIN_METHODS[metadata.family],
            "model_name": self.name,
            "model_version": metadata.model_version,
        }
