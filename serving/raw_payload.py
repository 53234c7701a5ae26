"""Raw transactions in request bodies: V1 rows, the flat object and V2 columns, checked against the model's mapping.

Pure functions, no KServe or web framework. A raw-transaction model directory records its mapping
(:class:`fraud_detection.transactions.mapping.TransactionMapping`), so a request row holds the *source* columns, as
the training file had them (PaySim's ``step``, ``type``, ``amount``, ``nameOrig``, ...). Each row becomes a
:class:`fraud_detection.features.online.Transaction` by the same rules as :func:`fraud_detection.transactions.contract.
canonical`: times in the mapping's unit become seconds, keys become text (a whole number loses its ``.0``), amounts are
finite and >= 0. A value of a categorical column the model one-hot encodes must be one it was trained on.

Accepted bodies:

* V1 ``{"instances": [{...}, ...]}``, each instance an object of source columns;
* the flat body: one object of source columns (also inside a Pub/Sub push envelope);
* V2 ``inputs``: one tensor per source column, each ``[N]`` or ``[N, 1]``: ``BYTES`` for text (keys, categories,
  ISO datetimes), ``FP64``/``INT64`` (or ``FP32``/``INT32``) for numbers. This is the layout MLServer's pandas codec
  and KServe's own tabular examples use: one named column per input.

The transaction id is the mapping's id column when it names one (then required). A mapping without one (PaySim)
takes an optional ``tx_id`` field per row; without it the row's id is ``<request id>/<row>``, so a client that
repeats its ``x-request-id`` on a retry is counted once by the store. The label, the label time and the mapping's
excluded columns (``isFraud``, ``isFlaggedFraud``) may be present, so that a row of the training file can be sent
as it is; they are ignored. Any other column is refused.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from typing import Any

import numpy as np

from fraud_detection.features.definitions import OneHot
from fraud_detection.features.online import Transaction
from fraud_detection.modeldir import TransactionInputs
from serving.payload import PayloadError, TensorInput, describe, v1_envelope

ROW_ID = "tx_id"
"""The optional id field of a row when the mapping names no id column."""
LABEL_FIELDS = ("tx_id", "label", "label_time")
"""The fields of a label message (the stream's labels topic, :func:`parse_label`)."""

_EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
_SECOND = timedelta(seconds=1)
_V2_TYPES = frozenset({"BYTES", "FP64", "FP32", "INT64", "INT32", "INT16", "INT8", "UINT64", "UINT32", "BOOL"})

Field = Callable[[str], str]
"""Names a column of one row in an error message: ``instances[3].amount``, ``input 'amount' element 3``."""


@dataclass(frozen=True)
class RawSchema:
    """What a raw-transaction request row must hold, from the model directory's mapping and feature set."""

    inputs: TransactionInputs
    required: tuple[str, ...]
    """Source columns every row must carry, in mapping order."""
    allowed: frozenset[str]
    """Every column a row may carry (required, the optional id, and the ignored label and excluded columns)."""
    categories: Mapping[str, tuple[str, ...]]
    """Categorical source columns the model one-hot encodes, with the values it knows."""
    width: int
    """How many features the model takes (``FeatureSet.names`` is computed on every access: ~30 us)."""

    @classmethod
    def of(cls, inputs: TransactionInputs) -> RawSchema:
        """The schema of a model directory's ``transactions`` record."""
        mapping = inputs.mapping
        required = [column for field, column in mapping.sources() if field not in ("label", "label_time", "excluded")]
        ignored = [mapping.label, *([mapping.label_time] if mapping.label_time else []), *mapping.excluded]
        optional = [ROW_ID] if mapping.tx_id is None else []
        categories = {f.column: f.categories for f in inputs.features.request if isinstance(f, OneHot)}
        allowed = frozenset([*required, *ignored, *optional])
        return cls(inputs, tuple(required), allowed, categories, len(inputs.features.names))

    def transaction(self, row: Mapping[str, Any], field: Field, where: str, default_id: str) -> Transaction:
        """One row as a :class:`Transaction`; a :class:`PayloadError` names the column and the problem."""
        missing = [column for column in self.required if column not in row]
        if missing:
            needed = list(self.required)
            raise PayloadError(f"{where}: missing column(s) {missing} (the model's mapping needs {needed})")
        if not self.allowed.issuperset(row):
            unknown = sorted(str(column) for column in row if column not in self.allowed)
            named = list(self.required)
            raise PayloadError(f"{where}: unknown column(s) {unknown} (the model's mapping names {named})")
        mapping = self.inputs.mapping
        if mapping.tx_id is not None:
            tx_id = _text_at(row, mapping.tx_id, field)
        elif row.get(ROW_ID) is not None:
            tx_id = _text_at(row, ROW_ID, field)
        else:
            tx_id = default_id
        if mapping.time_unit == "datetime":
            event_time = _time(row[mapping.event_time], field(mapping.event_time), mapping.time_unit)
        else:
            seconds = _number_at(row, mapping.event_time, field)
            event_time = seconds * 3600.0 if mapping.time_unit == "hours" else seconds
        keys: dict[str, str] = {role: _text_at(row, column, field) for role, column in mapping.entities.items()}
        amount = _number_at(row, mapping.amount, field)
        if amount < 0:
            raise PayloadError(f"{field(mapping.amount)}: {amount:g} is negative: an amount is >= 0")
        request: dict[str, Any] = {column: _number_at(row, column, field) for column in mapping.numeric}
        for column in mapping.categorical:
            value = _text_at(row, column, field)
            known = self.categories.get(column)
            if known is not None and value not in known:
                raise PayloadError(f"{field(column)}: unknown value {value!r}, the model knows {list(known)}")
            request[column] = value
        return Transaction(tx_id=tx_id, event_time=event_time, amount=amount, keys=keys, request=request)


def parse_label(row: Any, time_unit: str, where: str) -> tuple[str, int, float]:
    """A label as the labels topic carries it: ``{"tx_id": ..., "label": 0 or 1, "label_time": ...}``, the time in
    the mapping's ``time_unit``; returns ``(tx_id, label, label_time in seconds)``.

    Raises:
        PayloadError: naming the field at fault.
    """
    if not isinstance(row, Mapping):
        raise PayloadError(f"{where}: expected an object {{tx_id, label, label_time}}, got {describe(row)}")
    missing = [name for name in LABEL_FIELDS if name not in row]
    unknown = sorted(str(name) for name in row if name not in LABEL_FIELDS)
    if missing or unknown:
        raise PayloadError(
            f"{where}: "
            + "; ".join([*([f"missing {missing}"] if missing else []), *([f"unknown {unknown}"] if unknown else [])])
            + f" (a label holds {list(LABEL_FIELDS)})"
        )
    label = row["label"]
    if isinstance(label, bool) or label not in (0, 1):
        shown = describe(label) if isinstance(label, bool) or not isinstance(label, int | float) else repr(label)
        raise PayloadError(f"{where}.label: expected 0 or 1, got {shown}")
    tx_id = _text(row["tx_id"], f"{where}.tx_id")
    return tx_id, int(label), _time(row["label_time"], f"{where}.label_time", time_unit)


def _member_of(where: str) -> Field:
    return lambda column: f"{where}.{column}"


def _element_of(row: int) -> Field:
    return lambda column: f"input {column!r} element {row}"


def _number_at(row: Mapping[str, Any], column: str, field: Field) -> float:
    """``_number`` of the row's column; the column is named (``field``) only when the value is refused."""
    value = row[column]
    if type(value) is float and math.isfinite(value):
        return value
    return _number(value, field(column))


def _text_at(row: Mapping[str, Any], column: str, field: Field) -> str:
    """``_text`` of the row's column; the column is named (``field``) only when the value is refused."""
    value = row[column]
    if type(value) is str and value and not value.isspace():
        return value
    if type(value) is int:
        return str(value)
    return _text(value, field(column))


def _number(value: Any, where: str) -> float:
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{where}: expected a number, got {describe(value)}")
    number = float(value)
    if not math.isfinite(number):
        raise PayloadError(f"{where}: {value} is not a finite number")
    return number


def _text(value: Any, where: str) -> str:
    """A key, id or category as the contract reads it: text, or a number (a whole one without its ``.0``)."""
    if isinstance(value, bytes):
        try:
            value = value.decode()
        except UnicodeDecodeError as error:
            raise PayloadError(f"{where}: not UTF-8 text: {error}") from error
    if isinstance(value, str):
        if not value.strip():
            raise PayloadError(f"{where}: empty text")
        return value
    if isinstance(value, bool) or not isinstance(value, int | float):
        raise PayloadError(f"{where}: expected text, got {describe(value)}")
    if isinstance(value, float):
        if not math.isfinite(value):
            raise PayloadError(f"{where}: {value} is not a finite number")
        if value == round(value):
            return str(int(value))
    return str(value)


def _time(value: Any, where: str, unit: str) -> float:
    """Seconds from a value in the mapping's time unit (``seconds``, ``hours``, ISO 8601 ``datetime``)."""
    if unit != "datetime":
        seconds = _number(value, where)
        return seconds * 3600.0 if unit == "hours" else seconds
    if not isinstance(value, str):
        raise PayloadError(f"{where}: expected an ISO 8601 datetime, got {describe(value)}")
    try:
        moment = datetime.fromisoformat(value)
    except ValueError:
        raise PayloadError(f"{where}: {value!r} is not an ISO 8601 datetime") from None
    if moment.tzinfo is None:
        moment = moment.replace(tzinfo=UTC)
    return (moment - _EPOCH) / _SECOND


def _check_rows(n_rows: int, max_rows: int, where: str) -> None:
    if n_rows == 0:
        raise PayloadError(f"{where} is empty: send at least one transaction")
    if n_rows > max_rows:
        raise PayloadError(f"{where} has {n_rows} rows, more than the limit of {max_rows} rows per request")


def parse_v1_raw(body: Any, schema: RawSchema, request_id: str, max_rows: int) -> list[Transaction]:
    """A V1 body (``instances`` of objects), a flat object, or a Pub/Sub envelope of either, as transactions.

    Raises:
        PayloadError: naming the row and column at fault.
    """
    body, instances = v1_envelope(body, "transactions")
    if instances is None:
        return [schema.transaction(body, _member_of("body"), "body", f"{request_id}/0")]
    _check_rows(len(instances), max_rows, "'instances'")
    transactions = []
    for i, row in enumerate(instances):
        where = f"instances[{i}]"
        if not isinstance(row, Mapping):
            raise PayloadError(f"{where}: expected an object of the transaction's columns, got {describe(row)}")
        transactions.append(schema.transaction(row, _member_of(where), where, f"{request_id}/{i}"))
    return transactions


def _column(tensor: TensorInput, max_rows: int) -> list[Any]:
    """One V2 input's values as a flat list (bytes stay bytes; the row checks read them)."""
    shape = list(tensor.shape)
    if not all(type(d) is int and d >= 0 for d in shape) or len(shape) not in (1, 2) or shape[1:] not in ([], [1]):
        raise PayloadError(f"input {tensor.name!r}: shape must be [N] or [N, 1] (one column), got {shape}")
    if tensor.datatype.upper() not in _V2_TYPES:
        raise PayloadError(f"input {tensor.name!r}: datatype {tensor.datatype!r} is not one of {sorted(_V2_TYPES)}")
    _check_rows(shape[0], max_rows, f"input {tensor.name!r}")
    data = tensor.data
    values = data.reshape(-1).tolist() if isinstance(data, np.ndarray) else data
    if not isinstance(values, list):
        raise PayloadError(f"input {tensor.name!r}: data must be a list, got {describe(values)}")
    if values and all(type(value) is list for value in values):
        values = [item for value in values for item in value]
    if len(values) != shape[0]:
        raise PayloadError(f"input {tensor.name!r}: shape {shape} needs {shape[0]} values, data has {len(values)}")
    return values


def parse_v2_raw(inputs: Sequence[TensorInput], schema: RawSchema, request_id: str, max_rows: int) -> list[Transaction]:
    """V2 inputs, one per source column (see the module docstring), as transactions.

    Raises:
        PayloadError: naming the input (and row) at fault.
    """
    if not inputs:
        raise PayloadError(f"'inputs' is empty: send one tensor per column {list(schema.required)}")
    names = [tensor.name for tensor in inputs]
    repeated = sorted({name for name in names if names.count(name) > 1})
    if repeated:
        raise PayloadError(f"inputs {repeated} are given more than once")
    missing = [column for column in schema.required if column not in names]
    unknown = sorted(name for name in names if name not in schema.allowed)
    if missing or unknown:
        parts = [f"missing inputs {missing}"] if missing else []
        parts += [f"unknown inputs {unknown}"] if unknown else []
        raise PayloadError("; ".join(parts) + f" (one input per column: {list(schema.required)})")
    columns = {tensor.name: _column(tensor, max_rows) for tensor in inputs}
    n_rows = len(columns[names[0]])
    for name, values in columns.items():
        if len(values) != n_rows:
            raise PayloadError(f"input {name!r} has {len(values)} rows, input {names[0]!r} has {n_rows}")
    transactions = []
    for i in range(n_rows):
        row = {name: values[i] for name, values in columns.items()}
        transactions.append(schema.transaction(row, _element_of(i), f"row {i}", f"{request_id}/{i}"))
    return transactions
