"""A mapping: which column of a raw transaction file plays which part of the canonical frame.

A mapping names the transaction id (optional), the event time and its unit, one key per entity role, the
amount, the label, when each label became known (a column, or a fixed delay), the request columns (numeric
or categorical) and the columns that must never be features (PaySim's ``isFlaggedFraud`` encodes the label).
Two are built in (:data:`BUILTIN`); others come from a YAML or JSON file (:func:`load_mapping`).
"""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import Any, Literal

import yaml
from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fraud_detection.transactions.frame import (
    AMOUNT,
    EVENT_TIME,
    LABEL,
    LABEL_TIME,
    RESERVED,
    ROLES,
    SEQ,
    TX_ID,
    key_column,
)

TimeUnit = Literal["seconds", "hours", "datetime"]
Role = Literal["card", "terminal", "destination"]

TIME_UNITS: tuple[str, ...] = ("seconds", "hours", "datetime")
"""Units of the event-time column: seconds, hours (PaySim's ``step``), or ISO datetimes (read as UTC)."""


class MappingError(ValueError):
    """A mapping is unknown, unreadable or inconsistent; the message names the field at fault."""


class TransactionMapping(BaseModel):
    """Which source column becomes which canonical column (:mod:`fraud_detection.transactions.frame`)."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    tx_id: str | None = Field(default=None, description="unique transaction id; absent: the 1-based row number")
    event_time: str = Field(description="when the transaction happened, in time_unit")
    time_unit: TimeUnit = Field(default="seconds", description="seconds, hours or datetime (ISO 8601, UTC)")
    entities: dict[Role, str] = Field(min_length=1, description="entity role (card, terminal, destination): column")
    amount: str = Field(description="the amount, >= 0")
    label: str = Field(description="1 for fraud, 0 for legitimate")
    label_time: str | None = Field(default=None, description="when the label became known, in time_unit")
    label_delay_seconds: float | None = Field(
        default=None, ge=0.0, description="without label_time: the label is known this long after the event"
    )
    numeric: tuple[str, ...] = Field(default=(), description="numeric request columns (features as they come)")
    categorical: tuple[str, ...] = Field(default=(), description="categorical request columns")
    excluded: tuple[str, ...] = Field(
        default=(), description="columns the file may hold that are never features (dropped on reading)"
    )

    @field_validator("tx_id", "event_time", "amount", "label", "label_time")
    @classmethod
    def _a_column_name(cls, value: str | None) -> str | None:
        if value is not None and not value.strip():
            raise ValueError("must name a column, got an empty name")
        return value

    @field_validator("entities")
    @classmethod
    def _entity_columns(cls, value: dict[str, str]) -> dict[str, str]:
        for role, column in value.items():
            if not column.strip():
                raise ValueError(f"role {role!r} must name a column, got an empty name")
        return dict(sorted(value.items(), key=lambda item: ROLES.index(item[0])))

    @field_validator("numeric", "categorical", "excluded")
    @classmethod
    def _column_names(cls, value: tuple[str, ...]) -> tuple[str, ...]:
        if any(not column.strip() for column in value):
            raise ValueError("must name columns, got an empty name")
        return value

    @field_validator("label_delay_seconds")
    @classmethod
    def _finite_delay(cls, value: float | None) -> float | None:
        if value is not None and not math.isfinite(value):
            raise ValueError(f"must be a finite number of seconds, got {value}")
        return value

    @model_validator(mode="after")
    def _consistent(self) -> TransactionMapping:
        if self.label_time is not None and self.label_delay_seconds is not None:
            raise ValueError("give label_time (a column) or label_delay_seconds (a fixed delay), not both")
        seen: dict[str, str] = {}
        for field, column in self.sources():
            if column in seen:
                raise ValueError(f"{field}: column {column!r} is already mapped as {seen[column]}")
            seen[column] = field
        for field in ("numeric", "categorical"):
            for column in getattr(self, field):
                if column in RESERVED:
                    raise ValueError(
                        f"{field}: a request column may not be named {column!r}, a canonical column's name "
                        "(rename it in the data)"
                    )
        return self

    def sources(self) -> list[tuple[str, str]]:
        """Every (field, source column) pair the mapping names, the excluded columns included."""
        pairs = [("tx_id", self.tx_id), ("event_time", self.event_time)]
        pairs += [(f"entities.{role}", column) for role, column in self.entities.items()]
        pairs += [("amount", self.amount), ("label", self.label), ("label_time", self.label_time)]
        pairs += [(field, c) for field in ("numeric", "categorical", "excluded") for c in getattr(self, field)]
        return [(field, column) for field, column in pairs if column is not None]

    @property
    def label_delay(self) -> float:
        """Seconds from an event to its label when no label_time column is named (0 if no delay is given)."""
        return self.label_delay_seconds or 0.0

    def roles(self) -> tuple[str, ...]:
        """The entity roles this mapping names, in :data:`~fraud_detection.transactions.frame.ROLES` order."""
        return tuple(self.entities)

    def canonical_columns(self) -> list[str]:
        """The canonical frame's columns, in order, for data read with this mapping."""
        keys = [key_column(role) for role in self.entities]
        return [TX_ID, EVENT_TIME, SEQ, *keys, AMOUNT, LABEL, LABEL_TIME, *self.numeric, *self.categorical]


BUILTIN_DIR = Path(__file__).parent / "mappings"
"""The built-in mappings, one YAML file each, in the very format a user's mapping file takes."""

BUILTIN: tuple[str, ...] = ("paysim", "customer_terminal")
"""The built-in mappings' names: ``paysim`` (PaySim's exact schema) and ``customer_terminal`` (what
:mod:`fraud_detection.transactions.generator` writes)."""


def _problem(error: Any) -> str:
    where = ".".join(str(part) for part in error["loc"] if part != "[key]")
    message = str(error.get("ctx", {}).get("error", error["msg"]))
    if error["type"] == "extra_forbidden":
        return f"unknown field {where!r}"
    if error["type"] == "missing":
        return f"{where} is required"
    if error["type"] == "too_short":
        return f"{where} must not be empty"
    if error["type"] == "literal_error":
        return f"{where} must be one of {error['ctx']['expected']}, got {error['input']!r}"
    return f"{where}: {message}" if where else message


def parse_mapping(content: Any, source: str = "mapping") -> TransactionMapping:
    """A mapping from a decoded YAML/JSON object; :class:`MappingError` naming ``source`` and each bad field."""
    if not isinstance(content, dict):
        raise MappingError(f"{source}: a mapping is an object of fields, got {type(content).__name__}")
    try:
        return TransactionMapping.model_validate(content)
    except ValidationError as error:
        raise MappingError(f"{source}: " + "; ".join(_problem(e) for e in error.errors())) from error


def load_mapping(spec: str | Path) -> TransactionMapping:
    """A built-in mapping by name (:data:`BUILTIN`), or one read from a ``.yaml``, ``.yml`` or ``.json`` file.

    Raises:
        MappingError: neither a built-in name nor a readable mapping file, or the mapping is inconsistent.
    """
    path = BUILTIN_DIR / f"{spec}.yaml" if str(spec) in BUILTIN else Path(spec)
    if not path.is_file():
        raise MappingError(f"{spec}: neither a built-in mapping ({', '.join(BUILTIN)}) nor a mapping file")
    suffix = path.suffix.lower()
    if suffix not in (".yaml", ".yml", ".json"):
        raise MappingError(f"{spec}: a mapping file is .yaml, .yml or .json")
    text = path.read_text(encoding="utf-8")
    try:
        content = json.loads(text) if suffix == ".json" else yaml.safe_load(text)
    except (json.JSONDecodeError, yaml.YAMLError) as error:
        first = str(error).strip().splitlines()[0]
        raise MappingError(f"{spec}: cannot be read as {suffix[1:]}: {first}") from error
    return parse_mapping(content, str(spec))


__all__ = [
    "BUILTIN",
    "BUILTIN_DIR",
    "TIME_UNITS",
    "MappingError",
    "TransactionMapping",
    "load_mapping",
    "parse_mapping",
]
