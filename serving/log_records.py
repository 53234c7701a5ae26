"""The prediction log's records: what the request path hands over (:class:`Scored`), how a round of it is stacked for
the sender process (:func:`pack`), and how the sender writes each row as a Kafka message (:func:`encode_run`).

A record is :mod:`fraud_detection.monitoring.records`' (KServe's InferenceLogger CloudEvent of type
``org.kubeflow.serving.inference.response``, binary content mode on Kafka, keyed by the transaction id), and
:func:`messages` gives byte for byte what ``records.encode(records.record(...))`` gives, written directly at a
tenth of the cost.
"""

from __future__ import annotations

import functools
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import NamedTuple

import numpy as np
import orjson

from fraud_detection.monitoring.records import CONTENT_TYPE, RESPONSE_TYPE, Endpoint


class Scored(NamedTuple):
    """What one model call scored, as the request path hands it over: cheap to build, encoded later."""

    endpoint: Endpoint
    model_version: str
    feature_names: Sequence[str]
    x: np.ndarray
    """``[N, F]`` the features as scored."""
    proba: np.ndarray
    decisions: np.ndarray
    ids: Sequence[str] | str
    """The rows' transaction ids, or one prefix: row ``i``'s id is ``f"{ids}/{i}"``."""
    trace_id: int
    """The request's W3C trace id (0 when untraced)."""
    time_us: int
    """When it was scored, in microseconds since the epoch (``time.time_ns() // 1000``)."""
    trace_ids: Sequence[str] | None = None
    """Each row's own W3C trace id (32 hex digits, ``""`` when untraced) when rows carry their own, as the stream's
    messages do; None: every row has ``trace_id``."""


class Packed(NamedTuple):
    """A run of :class:`Scored` batches that share an endpoint, a model version and feature names, stacked: what
    the log's thread sends to the sender process (one pickle of a few arrays and lists, not one per request)."""

    endpoint: Endpoint
    model_version: str
    feature_names: tuple[str, ...]
    x: np.ndarray
    proba: np.ndarray
    decisions: np.ndarray
    batches: list[tuple[Sequence[str] | str, int, int, int, Sequence[str] | None]]
    """Each batch's ``(ids, rows, time_us, trace_id, trace_ids)`` (:class:`Scored`'s): the sender expands them
    row by row, so the server's thread does nothing per row."""

    @property
    def rows(self) -> int:
        """How many rows (records) the run holds."""
        return len(self.proba)


def row_ids(ids: Sequence[str] | str, n: int) -> list[str]:
    """The ``n`` transaction ids of a :class:`Scored` batch."""
    if isinstance(ids, str):
        return [f"{ids}/{i}" for i in range(n)]
    return list(ids)


def event_time(microseconds: int) -> str:
    """``microseconds`` since the epoch as the record's ``time`` attribute (RFC 3339 in UTC, as pydantic writes it)."""
    seconds, micro = divmod(microseconds, 1_000_000)
    text = _second(seconds)
    return f"{text}.{micro:06d}Z" if micro else f"{text}Z"


@functools.lru_cache(maxsize=4)
def _second(seconds: int) -> str:
    """The date and time to the second (formatting it is most of :func:`event_time`'s cost; a second repeats)."""
    return datetime.fromtimestamp(seconds, UTC).strftime("%Y-%m-%dT%H:%M:%S")


@dataclass(frozen=True)
class Source:
    """Who scored: the record's ``source``, ``inferenceservicename``, ``namespace`` and ``component``."""

    inference_service: str
    namespace: str
    component: str = "predictor"

    @property
    def source(self) -> str:
        """The ``source`` attribute, as :func:`fraud_detection.monitoring.records.record` makes it."""
        return f"/{self.namespace}/{self.inference_service}/{self.component}"


Message = tuple[bytes, bytes, list[tuple[str, bytes]]]
"""A Kafka message as ``Producer.produce`` takes it: key, value and headers."""


def messages(scored: Scored, where: Source) -> list[Message]:
    """Each row of ``scored`` as a Kafka message (key, value, headers): byte for byte what
    ``records.encode(records.record(prediction, ...))`` gives for the row's :class:`records.Prediction`."""
    return [message for _, found in encoded([scored], where) for message in found]


def encoded(work: Sequence[Scored], where: Source) -> list[tuple[Endpoint, list[Message]]]:
    """Every row of ``work`` as a Kafka message (:func:`messages`), by run of batches sharing an endpoint, a model
    version and feature names: ``(endpoint, messages)`` for each run. Raises ValueError for a batch that does not
    hold together (:func:`check`)."""
    for scored in work:
        check(scored)
    return [(packed.endpoint, encode_run(packed, where)) for packed in pack(work)]


def check(scored: Scored) -> None:
    """Raise ValueError unless ``scored``'s matrix, names, scores, ids and trace ids agree in shape."""
    x, n = scored.x, len(scored.proba)
    if x.ndim != 2 or x.shape[1] != len(scored.feature_names):
        raise ValueError(f"a batch of shape {x.shape} does not match its {len(scored.feature_names)} feature names")
    ids = 1 if isinstance(scored.ids, str) else len(scored.ids)
    traces = n if scored.trace_ids is None else len(scored.trace_ids)
    if not x.shape[0] == n == len(scored.decisions) == traces or (ids != n and not isinstance(scored.ids, str)):
        raise ValueError(f"a batch of {x.shape[0]} rows does not match its ids, scores or trace ids")


def pack(work: Sequence[Scored]) -> list[Packed]:
    """``work`` (batches that passed :func:`check`) as runs of batches sharing an endpoint, a model version and
    feature names, in order, each run's arrays stacked: a run of single-row batches (the server's usual traffic)
    becomes one matrix, so the sender encodes it with one ``orjson.dumps`` per array, not one per request."""
    runs: list[Packed] = []
    start = 0
    while start < len(work):
        first = work[start]
        end = start + 1
        while end < len(work) and _same_run(work[end], first):
            end += 1
        runs.append(_stacked(work[start:end]))
        start = end
    return runs


def _same_run(scored: Scored, first: Scored) -> bool:
    return (
        scored.endpoint == first.endpoint
        and scored.model_version == first.model_version
        and (scored.feature_names is first.feature_names or list(scored.feature_names) == list(first.feature_names))
        and scored.x.shape[1:] == first.x.shape[1:]
    )


def _trace(trace_id: int) -> str:
    return f"{trace_id:032x}" if trace_id else ""


def _stacked(run: Sequence[Scored]) -> Packed:
    first = run[0]
    if len(run) == 1:
        x, proba, decisions = first.x, first.proba, first.decisions
    else:
        x = np.concatenate([s.x for s in run])
        proba = np.concatenate([s.proba for s in run])
        decisions = np.concatenate([s.decisions for s in run])
    batches = [(s.ids, len(s.proba), s.time_us, s.trace_id, s.trace_ids) for s in run]
    return Packed(first.endpoint, first.model_version, tuple(first.feature_names), x, proba, decisions, batches)


def encode_run(packed: Packed, where: Source) -> list[Message]:
    """The Kafka messages of one :class:`Packed` run, in order (the sender process calls this)."""
    if not packed.rows:
        return []
    ids: list[str] = []
    whens: list[tuple[str, bytes]] = []
    traces: list[str] = []
    for batch_ids, n, time_us, trace_id, trace_ids in packed.batches:
        ids += row_ids(batch_ids, n)
        whens += [("ce_time", event_time(time_us).encode())] * n
        traces += trace_ids if trace_ids is not None else [_trace(trace_id)] * n
    source, after = _headers(where, packed.endpoint)
    found = []
    for tx_id, value, when in zip(ids, _values(packed, ids, traces), whens, strict=True):
        key = tx_id.encode()
        found.append((key, value, [_CONTENT_TYPE, ("ce_id", key), source, when, *after]))
    return found


_NUMPY = orjson.OPT_SERIALIZE_NUMPY
_VALUE = b'{"transaction_id":%b,"model_version":%b,"features":%b},"probability":%b,"decision":%b,"trace_id":%b}'


def _values(packed: Packed, ids: list[str], traces: list[str]) -> list[bytes]:
    """The JSON data of each row: the bytes ``records.encode`` gives for the row's :class:`records.Prediction`, but
    with every number of the run written by two ``orjson.dumps`` calls (the matrix and the probabilities, as
    float64, which is what the record's floats are) and spliced between the names: half the cost of a dict and a
    ``dumps`` per row."""
    names = packed.feature_names
    width = len(names)
    numbers = orjson.dumps(packed.x.astype(np.float64, copy=False), option=_NUMPY)[2:-2].replace(b"],[", b",")
    parts: list[bytes] = [b""] * (2 * width * len(ids))
    parts[0::2] = _prefixes(names) * len(ids)
    parts[1::2] = numbers.split(b",")
    probabilities = orjson.dumps(packed.proba.astype(np.float64, copy=False), option=_NUMPY)[1:-1].split(b",")
    if len(probabilities) != len(ids):
        raise ValueError(f"{len(probabilities)} probabilities for {len(ids)} rows")
    model_version, join, dumps, step = orjson.dumps(packed.model_version), b"".join, orjson.dumps, 2 * width
    return [
        _VALUE
        % (
            dumps(tx_id),
            model_version,
            join(parts[i * step : (i + 1) * step]),
            probability,
            b"true" if decision else b"false",
            dumps(trace),
        )
        for i, (tx_id, probability, decision, trace) in enumerate(
            zip(ids, probabilities, packed.decisions.tolist(), traces, strict=True)
        )
    ]


@functools.lru_cache(maxsize=8)
def _prefixes(names: tuple[str, ...]) -> list[bytes]:
    """What comes before each feature's number in the data's ``features`` object: ``{"V1":``, ``,"V2":``, ..."""
    return [(b"," if i else b"{") + orjson.dumps(name) + b":" for i, name in enumerate(names)]


_CONTENT_TYPE = ("content-type", CONTENT_TYPE.encode())


@functools.lru_cache(maxsize=64)
def _headers(where: Source, endpoint: str) -> tuple[tuple[str, bytes], tuple[tuple[str, bytes], ...]]:
    """The headers every record of ``endpoint`` shares: the one before ``ce_time``, and those after it."""
    return ("ce_source", where.source.encode()), (
        ("ce_inferenceservicename", where.inference_service.encode()),
        ("ce_namespace", where.namespace.encode()),
        ("ce_component", where.component.encode()),
        ("ce_endpoint", endpoint.encode()),
        ("ce_type", RESPONSE_TYPE.encode()),
        ("ce_specversion", b"1.0"),
    )
