"""The raw-transaction contract: a frame read with a mapping, checked row by row, made canonical.

:func:`canonical` checks the columns, then each mapped column in the mapping's order, and raises a
:class:`~fraud_detection.schema.DataValidationError` naming the column, the first offending row and its value.
Rows are numbered from 1 for the first data row, in file order (as in :mod:`fraud_detection.contract`), so
"row 17" is line 18 of a CSV file. The frame it returns is described in :mod:`fraud_detection.transactions.frame`.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.compute as pc

from fraud_detection.schema import DataValidationError
from fraud_detection.transactions.frame import AMOUNT, EVENT_TIME, LABEL, LABEL_TIME, SEQ, TX_ID, key_column
from fraud_detection.transactions.mapping import TransactionMapping

_HOUR = 3600.0
_EPOCH = pd.Timestamp(0, tz="UTC")


def _first_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0]) + 1


def _value(series: pd.Series, row: int) -> str:
    """The repr of a 1-based row's value as the file holds it (numpy scalars shown as plain numbers)."""
    value = series.iloc[row - 1]
    return repr(value.item() if isinstance(value, np.generic) else value)


def _plural(count: int, word: str) -> str:
    return f"{count} {word}{'' if count == 1 else 's'}"


def check_columns(frame: pd.DataFrame, mapping: TransactionMapping) -> None:
    """Raise unless ``frame`` has every column the mapping names and no other (excluded ones are allowed).

    Raises:
        DataValidationError: no columns, missing columns, or columns the mapping does not name.
    """
    if len(frame.columns) == 0:
        raise DataValidationError("the data set has no columns")
    present = {str(c) for c in frame.columns}
    required = [(field, column) for field, column in mapping.sources() if field != "excluded"]
    missing = [f"{column} ({field})" for field, column in required if column not in present]
    if missing:
        raise DataValidationError(f"missing columns: {', '.join(missing)}, named in the mapping")
    named = {column for _, column in mapping.sources()}
    extra = [str(c) for c in frame.columns if str(c) not in named]
    if extra:
        raise DataValidationError(
            f"unexpected columns: {', '.join(extra)} (not named in the mapping; list a column under "
            "'excluded' to drop it, or under 'numeric' or 'categorical' to use it)"
        )


def _numbers(series: pd.Series, column: str) -> np.ndarray:
    """The column as finite float64 values, or the error naming the first non-numeric or missing row."""
    if not pd.api.types.is_numeric_dtype(series):
        numbers = pd.to_numeric(series, errors="coerce")
        bad = numbers.isna().to_numpy() & series.notna().to_numpy()
        if bad.any():
            row = _first_row(bad)
            raise DataValidationError(f"column {column!r} must be numeric: row {row} has {_value(series, row)}")
        series = numbers
    values = series.to_numpy(dtype=np.float64, na_value=np.nan)
    _check_finite(values, column)
    return values


def _check_finite(values: np.ndarray, column: str) -> None:
    finite = np.isfinite(values)
    if not finite.all():
        count = int((~finite).sum())
        raise DataValidationError(
            f"column {column!r} has {_plural(count, 'missing or infinite value')} (first at row {_first_row(~finite)})"
        )


def _times(series: pd.Series, column: str, unit: str) -> np.ndarray:
    """Seconds (float64) from a column in ``unit``: seconds, hours, or ISO 8601 datetimes (UTC unless stated)."""
    if unit == "seconds":
        return _numbers(series, column)
    if unit == "hours":
        return _numbers(series, column) * _HOUR
    if pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_datetime64_any_dtype(series):
        raise DataValidationError(
            f"column {column!r} must hold ISO 8601 datetimes (time_unit datetime): row 1 has {_value(series, 1)}"
        )
    parsed = pd.to_datetime(series, utc=True, errors="coerce", format="ISO8601")
    bad = parsed.isna().to_numpy() & series.notna().to_numpy()
    if bad.any():
        row = _first_row(bad)
        raise DataValidationError(
            f"column {column!r} must be an ISO 8601 datetime: row {row} has {_value(series, row)}"
        )
    seconds = ((parsed - _EPOCH) / pd.Timedelta(seconds=1)).to_numpy(dtype=np.float64, na_value=np.nan)
    _check_finite(seconds, column)
    return seconds


def _strings(series: pd.Series) -> np.ndarray:
    """A column's values as an object array of ``str`` (None where missing); whole floats (an id column read as
    float because of a gap) lose their ``.0``; a column that already holds strings is not converted again."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = np.asarray([str(c) for c in series.cat.categories], dtype=object)
        codes = series.cat.codes.to_numpy()
        strings = np.full(len(series), None, dtype=object)
        strings[codes >= 0] = categories[codes[codes >= 0]]
        return strings
    if pd.api.types.is_float_dtype(series):
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        if np.all(np.isnan(values) | (values == np.round(values))):
            series = series.astype("Int64")
    present = series.notna().to_numpy()
    if pd.api.types.infer_dtype(series, skipna=True) == "string":
        out = series.to_numpy(dtype=object, copy=True)
    else:
        out = series.astype(str).to_numpy(dtype=object)
    out[~present] = None
    return out


def _non_empty(series: pd.Series, column: str, what: str) -> np.ndarray:
    """The column as str values, or the error naming the first missing or blank row."""
    values = _strings(series)
    text = pa.array(values, type=pa.string(), from_pandas=True)
    blank = pc.equal(pc.utf8_trim_whitespace(text), "")
    empty = blank.fill_null(True).to_numpy(zero_copy_only=False)
    if empty.any():
        count = int(empty.sum())
        raise DataValidationError(
            f"column {column!r} has {_plural(count, f'empty {what}')} (first at row {_first_row(empty)})"
        )
    return values


def _ids(frame: pd.DataFrame, mapping: TransactionMapping) -> np.ndarray:
    if mapping.tx_id is None:
        return np.arange(1, len(frame) + 1).astype(str).astype(object)
    column = mapping.tx_id
    ids = _non_empty(frame[column], column, "id")
    repeated = pd.Series(ids).duplicated().to_numpy()
    if repeated.any():
        second = int(np.flatnonzero(repeated)[0])
        first = int(np.flatnonzero(ids == ids[second])[0])
        raise DataValidationError(
            f"column {column!r} must hold unique ids: {ids[second]!r} is at rows {first + 1} and {second + 1} "
            f"({_plural(int(repeated.sum()), 'repeated id')})"
        )
    return ids


def check_both_classes(positives: int, rows: int, column: str) -> None:
    """Raise unless ``rows`` labels (``positives`` of them fraud) hold both classes.

    Raises:
        DataValidationError: every label is 0, or every label is 1; the message names the label ``column``.
    """
    if positives in (0, rows):
        only = "0 (legitimate)" if positives == 0 else "1 (fraud)"
        raise DataValidationError(f"column {column!r} has a single class, {only}: need both fraud and legitimate rows")


def _labels(series: pd.Series, column: str, both_classes: bool) -> np.ndarray:
    values = _numbers(series, column)
    not_binary = (values != 0) & (values != 1)
    if not_binary.any():
        found = ", ".join(f"{v:g}" for v in np.unique(values[not_binary])[:5])
        raise DataValidationError(
            f"column {column!r} must be 0 or 1: found {found} (first at row {_first_row(not_binary)})"
        )
    if both_classes:
        check_both_classes(int(values.sum()), len(values), column)
    return values.astype(np.int64)


def _label_times(frame: pd.DataFrame, mapping: TransactionMapping, event_time: np.ndarray) -> np.ndarray:
    if mapping.label_time is None:
        return event_time + mapping.label_delay
    column = mapping.label_time
    label_time = _times(frame[column], column, mapping.time_unit)
    early = label_time < event_time
    if early.any():
        row = _first_row(early)
        raise DataValidationError(
            f"column {column!r} must not be before the event time ({mapping.event_time!r}): row {row} has "
            f"{_value(frame[column], row)} before {_value(frame[mapping.event_time], row)} "
            f"({_plural(int(early.sum()), 'such row')})"
        )
    return label_time


def canonical(frame: pd.DataFrame, mapping: TransactionMapping, *, both_classes: bool = True) -> pd.DataFrame:
    """Check a raw transaction frame against its mapping and return the canonical frame.

    Checks, each with an error that names the column, the first offending row and its value: no columns;
    missing columns; columns the mapping does not name; no rows; empty or repeated transaction ids; event
    times that are not numbers (or ISO datetimes), missing or infinite; empty entity keys; amounts that are
    not numbers, missing, infinite or negative; labels other than 0/1, or a single class; label times before
    their event; request columns that are not numbers or are missing.

    Args:
        frame: the raw data, rows in file order.
        mapping: which column plays which part.
        both_classes: check that the labels hold both classes (False for one part of a data set, whose
            whole is checked with :func:`check_both_classes`).

    Returns:
        The canonical frame (:mod:`fraud_detection.transactions.frame`): sorted by event time (stable, so
        rows at the same time keep file order) and numbered by ``seq``; the excluded columns are dropped.
    """
    check_columns(frame, mapping)
    if len(frame) == 0:
        raise DataValidationError("the data set has no rows")
    columns: dict[str, np.ndarray] = {TX_ID: _ids(frame, mapping)}
    event_time = _times(frame[mapping.event_time], mapping.event_time, mapping.time_unit)
    columns[EVENT_TIME] = event_time
    for role, column in mapping.entities.items():
        columns[key_column(role)] = _non_empty(frame[column], column, "key")
    amount = _numbers(frame[mapping.amount], mapping.amount)
    negative = amount < 0
    if negative.any():
        row = _first_row(negative)
        raise DataValidationError(
            f"column {mapping.amount!r} has {_plural(int(negative.sum()), 'negative value')} "
            f"(first at row {row}: {amount[row - 1]:g})"
        )
    columns[AMOUNT] = amount
    columns[LABEL] = _labels(frame[mapping.label], mapping.label, both_classes)
    columns[LABEL_TIME] = _label_times(frame, mapping, event_time)
    for column in mapping.numeric:
        columns[column] = _numbers(frame[column], column)
    for column in mapping.categorical:
        columns[column] = _non_empty(frame[column], column, "value")

    order = np.argsort(event_time, kind="stable")
    columns[SEQ] = np.arange(len(frame), dtype=np.int64)
    ordered = {name: columns[name] if name == SEQ else columns[name][order] for name in mapping.canonical_columns()}
    return pd.DataFrame(ordered, copy=False)


__all__ = ["canonical", "check_both_classes", "check_columns"]
