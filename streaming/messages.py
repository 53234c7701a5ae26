"""Kafka messages in and out of the stream scorer: pure functions, no Kafka client.

* In: one transaction per message, a JSON object of the 29 features (``V1``…``V28``, ``Amount``), the same flat
  object the server's ``/predict`` takes. The transaction id is the message key, or a ``transaction_id`` field
  of the object (which wins). A ``traceparent`` header carries the caller's trace context.
* Out: one result per transaction, keyed by its id (:func:`result_value`), with the ``traceparent`` header passed
  on. The value holds nothing that changes between two scorings of the same message by the same model, so a
  message delivered twice (at-least-once) gets two identical results.
* Rejects: the original key, value and headers, plus the reason (:data:`REASON_HEADER`) and its class
  (:data:`CLASS_HEADER`), to the dead-letter topic. Validation is the server's (:func:`serving.payload.parse_v1`),
  so a message is rejected exactly when the server would answer its body with a 400.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import orjson

from serving.payload import PayloadError, parse_v1

REASON_HEADER = "fraud-dead-letter-reason"
CLASS_HEADER = "fraud-dead-letter-class"
SOURCE_HEADER = "fraud-source"
"""``topic/partition/offset`` of the rejected message."""
TRACEPARENT = "traceparent"
ID_FIELD = "transaction_id"
MAX_ID_LENGTH = 256

NOT_JSON = "not_json"
NOT_A_TRANSACTION = "not_a_transaction"
NO_TRANSACTION_ID = "no_transaction_id"
NOT_A_LABEL = "not_a_label"
"""A message of the labels topic (raw-transaction models, :mod:`streaming.transactions`) that is not a label."""
REJECT_CLASSES = (NOT_JSON, NOT_A_TRANSACTION, NO_TRANSACTION_ID, NOT_A_LABEL)
"""Every class of bad message, as written in the :data:`CLASS_HEADER` of its dead letter."""


@dataclass
class Batch:
    """A batch of messages decoded: the valid rows' features and ids, and the rejects.

    ``positions[i]`` is the position in the batch of row ``i`` of ``x``; ``rejects`` holds
    ``(position, class, reason)`` for every message that cannot be scored.
    """

    x: np.ndarray
    ids: list[str]
    positions: list[int]
    rejects: list[tuple[int, str, str]] = field(default_factory=list)


def json_object(value: bytes | None, wanted: str) -> dict[str, Any]:
    """A message value decoded as a JSON object, or a :class:`Reject` (``wanted`` names what it should hold)."""
    if not value:
        raise Reject(NOT_JSON, f"message value is empty: send {wanted}")
    try:
        obj = orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise Reject(NOT_JSON, f"message value is not valid JSON: {error}") from error
    if type(obj) is not dict:
        kind = "a list" if isinstance(obj, list) else type(obj).__name__
        raise Reject(NOT_A_TRANSACTION, f"message value must be {wanted}, got {kind}")
    return obj


def _transaction(value: bytes | None, key: bytes | None) -> tuple[str, dict[str, Any]]:
    """The id and feature object of one message, or a :class:`Reject`."""
    obj = json_object(value, "a JSON object of the 29 features")
    raw_id = obj.pop(ID_FIELD, None)
    if raw_id is None and key:
        raw_id = key.decode("utf-8", "replace")
    if type(raw_id) is str and 0 < len(raw_id) <= MAX_ID_LENGTH:
        return raw_id, obj
    if isinstance(raw_id, bool) or not isinstance(raw_id, str | int) or raw_id == "":
        raise Reject(
            NO_TRANSACTION_ID,
            f"no transaction id: key the message by it or add a '{ID_FIELD}' string"
            + ("" if raw_id is None else f" (got {type(raw_id).__name__} {str(raw_id)[:40]!r})"),
        )
    transaction_id = str(raw_id)
    if len(transaction_id) > MAX_ID_LENGTH:
        raise Reject(NO_TRANSACTION_ID, f"transaction id is {len(transaction_id)} characters, over {MAX_ID_LENGTH}")
    return transaction_id, obj


class Reject(ValueError):
    """A message that cannot be scored: its class (one of :data:`REJECT_CLASSES`) and the reason."""

    def __init__(self, kind: str, reason: str) -> None:
        super().__init__(reason)
        self.kind = kind


def decode_batch(values: Sequence[bytes | None], keys: Sequence[bytes | None]) -> Batch:
    """Decode and validate a batch of message values (with their keys) into one feature matrix.

    The whole batch is validated in one call to the server's parser; only when that finds a problem is each
    row parsed on its own, to reject exactly the bad ones with their own reason.
    """
    ids: list[str] = []
    rows: list[dict[str, Any]] = []
    positions: list[int] = []
    rejects: list[tuple[int, str, str]] = []
    for position, (value, key) in enumerate(zip(values, keys, strict=True)):
        try:
            transaction_id, row = _transaction(value, key)
        except Reject as reject:
            rejects.append((position, reject.kind, str(reject)))
            continue
        ids.append(transaction_id)
        rows.append(row)
        positions.append(position)
    if not rows:
        return Batch(np.empty((0, 29), dtype=np.float32), [], [], rejects)
    try:
        x = parse_v1({"instances": rows}, len(rows))
    except PayloadError:
        kept: list[np.ndarray] = []
        kept_ids: list[str] = []
        kept_positions: list[int] = []
        for row, transaction_id, position in zip(rows, ids, positions, strict=True):
            try:
                kept.append(parse_v1(row, 1))
            except PayloadError as error:
                rejects.append((position, NOT_A_TRANSACTION, str(error).replace("body", "message", 1)))
                continue
            kept_ids.append(transaction_id)
            kept_positions.append(position)
        x = np.concatenate(kept) if kept else np.empty((0, 29), dtype=np.float32)
        ids, positions = kept_ids, kept_positions
        rejects.sort()
    return Batch(x, ids, positions, rejects)


def result_value(
    transaction_id: str, probability: float, flagged: bool, version: str, threshold: float, traceparent: str | None
) -> bytes:
    """The JSON result of one transaction (the same fields as a V1 prediction, plus its id)."""
    result: dict[str, Any] = {
        "transaction_id": transaction_id,
        "fraud_probability": probability,
        "is_fraud": flagged,
        "model_version": version,
        "threshold": threshold,
    }
    if traceparent:
        result[TRACEPARENT] = traceparent
    return orjson.dumps(result)


def header(headers: list[tuple[str, bytes | None]] | None, name: str) -> str | None:
    """The value of header ``name`` (the first one), decoded, or None."""
    for key, value in headers or ():
        if key == name and value is not None:
            return value.decode("latin-1")
    return None
