"""Late labels: what a label is, and how it is read from a file import or a Kafka message.

A label says whether a transaction turned out to be fraud, and when that became known: ``tx_id``, ``label``
(0 or 1) and ``label_time`` (ISO 8601 with a zone, or epoch seconds). It arrives days or weeks after the
scoring, on a topic (one JSON object per message, keyed by the transaction id) or in a file (CSV with a header
row, or JSON lines). The same transaction may be labelled more than once (a chargeback reversed, a resend):
:mod:`fraud_detection.monitoring.join` keeps the label with the latest ``label_time``, whatever the order.
"""

from __future__ import annotations

import csv
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any, Literal

import orjson
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator

from fraud_detection.parsers import json_of

FIELDS = ("tx_id", "label", "label_time")


class LabelError(ValueError):
    """A label that cannot be read; the message names the line (or message) and the field at fault."""


class Label(BaseModel):
    """One transaction's outcome, as known at ``label_time``."""

    model_config = ConfigDict(extra="ignore", frozen=True)

    tx_id: str = Field(min_length=1, max_length=256)
    label: Literal[0, 1] = Field(description="1: fraud (a chargeback, a confirmed report); 0: legitimate")
    label_time: datetime = Field(description="when the outcome became known (timezone-aware)")

    @field_validator("label", mode="before")
    @classmethod
    def _label_as_int(cls, value: Any) -> Any:
        """CSV gives text: '0' and '1' (and JSON's true/false) are the two labels."""
        if isinstance(value, str) and value.strip() in ("0", "1"):
            return int(value.strip())
        if isinstance(value, bool):
            return int(value)
        return value

    @field_validator("label_time", mode="before")
    @classmethod
    def _time_with_zone(cls, value: Any) -> Any:
        """Epoch seconds are UTC; a text time must carry its zone (a naive time is refused, not guessed)."""
        if isinstance(value, int | float) and not isinstance(value, bool):
            return datetime.fromtimestamp(float(value), UTC)
        if isinstance(value, str):
            try:
                return datetime.fromtimestamp(float(value), UTC)
            except ValueError:
                pass
        return value

    @field_validator("label_time")
    @classmethod
    def _aware(cls, value: datetime) -> datetime:
        if value.tzinfo is None:
            raise ValueError("label_time has no timezone: give it as ISO 8601 with a zone, or epoch seconds")
        return value


def parse(fields: dict[str, Any], where: str) -> Label:
    """A :class:`Label` from a mapping; :class:`LabelError` names ``where`` and the field at fault."""
    try:
        return Label.model_validate(fields)
    except ValidationError as error:
        first = error.errors()[0]
        field = ".".join(str(part) for part in first["loc"]) or "label"
        raise LabelError(f"{where}: {field}: {first['msg']} (got {first.get('input')!r})") from error


def decode(key: bytes | None, value: bytes | None) -> Label:
    """The label in a Kafka message: a JSON object of the three fields; the key, when set, is the tx id."""
    where = f"label message {key.decode(errors='replace') if key else '(no key)'}"
    try:
        fields = orjson.loads(value or b"")
    except orjson.JSONDecodeError as error:
        raise LabelError(f"{where}: not JSON: {error}") from error
    if not isinstance(fields, dict):
        raise LabelError(f"{where}: expected a JSON object of {', '.join(FIELDS)}")
    if key and "tx_id" not in fields:
        fields["tx_id"] = key.decode(errors="replace")
    return parse(fields, where)


def encode(label: Label) -> tuple[bytes, bytes]:
    """``(key, value)`` of the Kafka message carrying ``label``."""
    return label.tx_id.encode(), orjson.dumps(label.model_dump(mode="json"))


def read_file(path: Path) -> Iterator[Label]:
    """The labels of a CSV (header ``tx_id,label,label_time``) or JSON-lines file (``.jsonl``/``.json``/``.ndjson``),
    in file order; the first bad line stops the import with its number (lines count from 1, the header included)."""
    if path.suffix.lower() in (".jsonl", ".json", ".ndjson"):
        with path.open("rb") as handle:
            for number, line in enumerate(handle, start=1):
                if not line.strip():
                    continue
                try:
                    fields = json_of(line, dict)
                except ValueError as error:
                    raise LabelError(
                        f"{path.name} line {number}: {error} (an object of {', '.join(FIELDS)})"
                    ) from error
                yield parse(fields, f"{path.name} line {number}")
        return
    with path.open(newline="") as handle:
        reader = csv.DictReader(handle)
        missing = [name for name in FIELDS if name not in (reader.fieldnames or [])]
        if missing:
            raise LabelError(f"{path.name}: the header lacks {', '.join(missing)} (it has {reader.fieldnames})")
        for row in reader:
            yield parse(row, f"{path.name} line {reader.line_num}")
