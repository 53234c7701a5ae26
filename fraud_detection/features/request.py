"""Per-transaction features from request columns, one function for the frame and for a single transaction."""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np

from fraud_detection.features.definitions import BalanceError, HourOfDay, Numeric, OneHot, RequestFeature
from fraud_detection.features.window import Floats
from fraud_detection.transactions.frame import AMOUNT, EVENT_TIME

DAY_SECONDS = 86_400.0


class MissingColumnError(KeyError):
    """A request feature needs a column the transaction or frame does not have."""

    def __str__(self) -> str:
        return str(self.args[0])


def request_features(columns: Callable[[str], Any], features: Sequence[RequestFeature]) -> dict[str, Floats]:
    """Every request feature as float64 arrays; ``columns(name)`` gives a column's values (a Series or a list).

    ``amount`` and ``event_time`` are read through ``columns`` too. A missing column raises ``MissingColumnError``.
    """
    out: dict[str, Floats] = {}
    for feature in features:
        if isinstance(feature, Numeric):
            out[feature.column] = _numeric(columns, feature.column)
        elif isinstance(feature, BalanceError):
            before, after = _numeric(columns, feature.before), _numeric(columns, feature.after)
            amount = _numeric(columns, AMOUNT)
            out[feature.name] = after + amount - before if feature.outgoing else before + amount - after
        elif isinstance(feature, HourOfDay):
            time = _numeric(columns, EVENT_TIME)
            out["hour_of_day"] = np.floor(np.mod(time, DAY_SECONDS) / 3_600.0)
        elif isinstance(feature, OneHot):
            values = np.asarray(_column(columns, feature.column), dtype=object).astype(str)
            for name, category in zip(feature.names, feature.categories, strict=True):
                out[name] = (values == category).astype(np.float64)
    return out


def request_values(row: Mapping[str, Any], features: Sequence[RequestFeature]) -> dict[str, float]:
    """:func:`request_features` of one transaction's fields (``amount`` and ``event_time`` among them), as plain
    floats: the same arithmetic on Python floats, IEEE doubles as numpy's float64 are, without numpy's fixed cost
    per call that dominates for one row. A missing column raises ``MissingColumnError``."""
    out: dict[str, float] = {}
    for feature in features:
        if isinstance(feature, Numeric):
            out[feature.column] = _float(row, feature.column)
        elif isinstance(feature, BalanceError):
            before, after, amount = _float(row, feature.before), _float(row, feature.after), _float(row, AMOUNT)
            out[feature.name] = after + amount - before if feature.outgoing else before + amount - after
        elif isinstance(feature, HourOfDay):
            out["hour_of_day"] = float(math.floor(_float(row, EVENT_TIME) % DAY_SECONDS / 3_600.0))
        elif isinstance(feature, OneHot):
            value = str(_column(row.__getitem__, feature.column))
            for name, category in zip(feature.names, feature.categories, strict=True):
                out[name] = 1.0 if value == category else 0.0
    return out


def _float(row: Mapping[str, Any], name: str) -> float:
    """One field as ``_numeric`` converts it (numpy's conversion for anything but a plain number)."""
    value = _column(row.__getitem__, name)
    return float(value) if type(value) in (float, int) else float(np.asarray(value, dtype=np.float64))


def _column(columns: Callable[[str], Any], name: str) -> Any:
    try:
        return columns(name)
    except KeyError:
        raise MissingColumnError(f"request feature needs column {name!r}, which the transactions do not have") from None


def _numeric(columns: Callable[[str], Any], name: str) -> Floats:
    return np.asarray(_column(columns, name), dtype=np.float64)


def from_mapping(row: Mapping[str, Any]) -> Callable[[str], Any]:
    """A single transaction's fields as one-element columns."""
    return lambda name: [row[name]]
