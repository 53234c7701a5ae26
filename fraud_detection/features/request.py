"""Per-transaction features from request columns, one function for the frame and for a single transaction."""

from __future__ import annotations

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
