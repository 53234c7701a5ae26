"""Parse and validate prediction request bodies into the model's float32 feature matrix.

Pure functions, no KServe or web framework imports. These body shapes are accepted:

* V1 ``{"instances": [...]}`` where every row is either an object of the 29 named features or a list of
  29 numbers in :data:`fraud_detection.schema.FEATURES` order (V1..V28, Amount);
* a flat object of the 29 features (the single-transaction body older fraud APIs take);
* either of those inside a Pub/Sub push-subscription envelope (``message.data``, base64-encoded JSON);
* V2 (Open Inference Protocol) inputs: one FP32 tensor of shape ``[N, 29]``, or one ``[N]`` / ``[N, 1]``
  tensor per feature, named after the feature.

Every problem raises :class:`PayloadError` whose message names the row, field or tensor at fault.
"""

from __future__ import annotations

import difflib
import itertools
import math
import operator
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from fraud_detection.schema import AMOUNT, FEATURES

N_FEATURES = len(FEATURES)
_FEATURE_INDEX = {name: i for i, name in enumerate(FEATURES)}
_FEATURE_SET = frozenset(FEATURES)
_FLOAT32_MAX = float(np.finfo(np.float32).max)
_V2_DATATYPES = ("FP32", "FP64")
_NUMBER_TYPES = frozenset({float, int})
_FEATURE_GETTER = operator.itemgetter(*FEATURES)


class PayloadError(ValueError):
    """A request body breaks the serving contract. The message names the row, field or tensor at fault."""


@dataclass(frozen=True)
class TensorInput:
    """One V2 input tensor as received: ``data`` is the JSON list, or a numpy array for binary tensors."""

    name: str
    shape: Sequence[int]
    datatype: str
    data: Any


def _suggest(name: str) -> str:
    close = difflib.get_close_matches(name, FEATURES, n=1, cutoff=0.6)
    if not close:
        close = [f for f in FEATURES if f.lower() == name.strip().lower()]
    return f" (did you mean {close[0]!r}?)" if close else ""


def describe(value: Any) -> str:
    """A JSON value as an error message names it: ``null``, ``string 'abc'``, ``a list``."""
    if value is None:
        return "null"
    if isinstance(value, bool):
        return f"boolean {str(value).lower()}"
    if isinstance(value, str):
        shown = value if len(value) <= 20 else value[:17] + "..."
        return f"string {shown!r}"
    if isinstance(value, Mapping):
        return "an object"
    if isinstance(value, list):
        return "a list"
    return type(value).__name__


def _number(value: Any, where: str) -> float:
    """``value`` as a finite float32-representable number, or a PayloadError naming ``where``."""
    kind = type(value)
    if kind is float:
        if not math.isfinite(value):
            raise PayloadError(f"{where}: {value} is not a finite number")
    elif kind is not int:
        if isinstance(value, bool) or not isinstance(value, int | float):
            raise PayloadError(f"{where}: expected a number, got {describe(value)}")
        value = float(value)
        if not math.isfinite(value):
            raise PayloadError(f"{where}: {value} is not a finite number")
    if abs(value) > _FLOAT32_MAX:
        raise PayloadError(f"{where}: {value} is outside the float32 range")
    return float(value)


def _check_keys(keys: Any, where: str) -> None:
    present = set(keys)
    if present == _FEATURE_SET:
        return
    missing = [f for f in FEATURES if f not in present]
    extra = sorted(str(k) for k in present - _FEATURE_SET)
    parts = []
    if missing:
        parts.append(f"missing features {missing}")
    if extra:
        parts.append("unknown features " + ", ".join(f"{k!r}{_suggest(k)}" for k in extra))
    raise PayloadError(f"{where}: " + "; ".join(parts) + f" (expected exactly {N_FEATURES}: V1..V28, Amount)")


def _row_from_mapping(row: Mapping[str, Any], where: str) -> list[float]:
    _check_keys(row.keys(), where)
    return [_number(row[name], f"{where}.{name}") for name in FEATURES]


def _rows_from_mappings(instances: list[Any]) -> np.ndarray:
    """Rows of named features as a float32 matrix.

    The common case (exactly the 29 names, plain numbers, all finite float32) is checked for the whole batch at
    once; when those checks fail, every row goes through :func:`_row_from_mapping`, whose error names the row
    and field, so both paths accept and refuse exactly the same rows.
    """
    rows: list[Any] = []
    for i, row in enumerate(instances):
        if type(row) is not dict and not isinstance(row, Mapping):
            raise PayloadError(f"instances[{i}]: expected an object like instances[0], got {describe(row)}")
        try:
            values = _FEATURE_GETTER(row) if len(row) == N_FEATURES else None
        except KeyError:
            values = None
        if values is None:  # names missing or extra: the per-field check says which
            values = _row_from_mapping(row, f"instances[{i}]")
        rows.append(values)
    clean = set(map(type, itertools.chain.from_iterable(rows))) <= _NUMBER_TYPES
    if clean:
        try:
            x64 = np.asarray(rows, dtype=np.float64)
            clean = bool(np.isfinite(x64).all() and (np.abs(x64) <= _FLOAT32_MAX).all())
        except OverflowError:  # an integer too large for a float
            clean = False
    if not clean:
        x64 = np.asarray([_row_from_mapping(row, f"instances[{i}]") for i, row in enumerate(instances)])
    x = x64.astype(np.float32)
    _check_amount(x, "instances")
    return x


def _row_from_list(row: Sequence[Any], where: str) -> list[float]:
    if len(row) != N_FEATURES:
        raise PayloadError(f"{where} has {len(row)} values, expected {N_FEATURES} (V1..V28, Amount in that order)")
    return [_number(value, f"{where}[{i}] ({FEATURES[i]})") for i, value in enumerate(row)]


def _check_batch_size(n_rows: int, max_rows: int, where: str) -> None:
    if n_rows == 0:
        raise PayloadError(f"{where} is empty: send at least one row")
    if n_rows > max_rows:
        raise PayloadError(f"{where} has {n_rows} rows, more than the limit of {max_rows} rows per request")


def _check_amount(x: np.ndarray, where: str) -> None:
    amount = x[:, _FEATURE_INDEX[AMOUNT]]
    bad = np.flatnonzero(amount < 0)
    if bad.size:
        row = int(bad[0])
        raise PayloadError(f"{where}: row {row}: Amount must be >= 0, got {float(amount[row])}")


def is_pubsub_push(body: Any) -> bool:
    """True for a Pub/Sub push-subscription envelope: ``{"message": {"data": ...}, "subscription": ...}``."""
    return isinstance(body, Mapping) and "subscription" in body and isinstance(body.get("message"), Mapping)


def unwrap_pubsub(body: Mapping[str, Any]) -> Any:
    """The JSON body a Pub/Sub push envelope carries (``message.data``, base64), decoded.

    Raises:
        PayloadError: the envelope has no data, or its data is not base64-encoded JSON.
    """
    import base64
    import binascii

    import orjson

    data = body["message"].get("data")
    if not isinstance(data, str) or not data:
        raise PayloadError("Pub/Sub push envelope: message.data is missing (publish the transaction JSON as the data)")
    try:
        return orjson.loads(base64.b64decode(data, validate=True))
    except (binascii.Error, ValueError) as error:
        raise PayloadError(f"Pub/Sub push envelope: message.data is not base64-encoded JSON: {error}") from error


def v1_envelope(body: Any, rows: str) -> tuple[Mapping[str, Any], list[Any] | None]:
    """The object a V1 request carries (a Pub/Sub push envelope unwrapped) and its ``instances`` list, or None for
    a flat object; ``rows`` names what the list holds in errors ("rows", "transactions").

    Raises:
        PayloadError: a body that is not an object, a V2 body, fields beside ``instances``, or ``instances`` that is
            not a list.
    """
    if is_pubsub_push(body):
        body = unwrap_pubsub(body)
    if not isinstance(body, Mapping):
        raise PayloadError(f"request body must be a JSON object, got {describe(body)}")
    if "instances" not in body:
        if "inputs" in body:
            raise PayloadError(
                "'inputs' is a V2 body: send it to /v2/models/<name>/infer, or use 'instances' on the V1 endpoint"
            )
        return body, None
    extra = sorted(str(k) for k in body if k not in ("instances", "parameters", "id"))
    if extra:
        raise PayloadError(f"unexpected top-level fields {extra}: a V1 body holds 'instances' (and 'parameters')")
    instances = body["instances"]
    if not isinstance(instances, list):
        raise PayloadError(f"'instances' must be a list of {rows}, got {describe(instances)}")
    return body, instances


def parse_v1(body: Any, max_rows: int) -> np.ndarray:
    """Turn a V1 body (``instances``), a flat feature object, or a Pub/Sub push envelope carrying either, into an
    ``[N, 29]`` float32 matrix.

    Args:
        body: the decoded JSON body.
        max_rows: the largest batch accepted.

    Raises:
        PayloadError: naming the row and field at fault.
    """
    body, instances = v1_envelope(body, "rows")
    if instances is None:
        if not body:
            raise PayloadError("request body is an empty object: send 'instances' or the 29 features")
        x = np.asarray([_row_from_mapping(body, "body")], dtype=np.float32)
        _check_amount(x, "body")
        return x
    _check_batch_size(len(instances), max_rows, "'instances'")
    first = instances[0]
    rows: list[list[float]] = []
    if isinstance(first, Mapping):
        return _rows_from_mappings(instances)
    if isinstance(first, list):
        for i, row in enumerate(instances):
            if not isinstance(row, list):
                raise PayloadError(f"instances[{i}]: expected a list like instances[0], got {describe(row)}")
            rows.append(_row_from_list(row, f"instances[{i}]"))
    else:
        raise PayloadError(
            f"instances[0]: expected an object of named features or a list of {N_FEATURES} numbers, "
            f"got {describe(first)}"
        )
    x = np.asarray(rows, dtype=np.float32)
    _check_amount(x, "instances")
    return x


def _shape(tensor: TensorInput) -> list[int]:
    shape = list(tensor.shape)
    if not all(type(d) is int and d >= 0 for d in shape):
        raise PayloadError(f"input {tensor.name!r}: shape must be non-negative integers, got {shape}")
    return shape


def _tensor_values(tensor: TensorInput, n_expected: int) -> np.ndarray:
    """The tensor's data as a flat float32 array of ``n_expected`` finite values."""
    if tensor.datatype.upper() not in _V2_DATATYPES:
        raise PayloadError(f"input {tensor.name!r}: datatype must be FP32 (or FP64), got {tensor.datatype!r}")
    data = tensor.data
    if isinstance(data, np.ndarray):
        flat64 = data.astype(np.float64, copy=False).reshape(-1)
    else:
        if not isinstance(data, list):
            raise PayloadError(f"input {tensor.name!r}: data must be a list of numbers, got {describe(data)}")
        nested = bool(data) and type(data[0]) is list
        if nested and all(type(row) is list for row in data):
            kinds = set(map(type, itertools.chain.from_iterable(data)))
        else:
            nested = False
            kinds = set(map(type, data))
        if not kinds <= {float, int}:
            flat = list(itertools.chain.from_iterable(data)) if nested else data
            for i, value in enumerate(flat):
                if type(value) not in (float, int):
                    raise PayloadError(f"input {tensor.name!r}: element {i}: expected a number, got {describe(value)}")
        flat64 = np.asarray(data, dtype=np.float64).reshape(-1)
    if flat64.size != n_expected:
        raise PayloadError(
            f"input {tensor.name!r}: shape {list(tensor.shape)} needs {n_expected} values, data has {flat64.size}"
        )
    bad = np.flatnonzero(~np.isfinite(flat64) | (np.abs(flat64) > _FLOAT32_MAX))
    if bad.size:
        i = int(bad[0])
        raise PayloadError(f"input {tensor.name!r}: element {i} is {flat64[i]}, not a finite float32 number")
    return flat64.astype(np.float32)


def parse_v2(inputs: Sequence[TensorInput], max_rows: int) -> np.ndarray:
    """Turn V2 inputs into an ``[N, 29]`` float32 matrix.

    Accepted: one tensor of shape ``[N, 29]`` (any name), or exactly one tensor per feature named
    V1..V28, Amount, each of shape ``[N]`` or ``[N, 1]``.

    Raises:
        PayloadError: naming the tensor and the problem.
    """
    if not inputs:
        raise PayloadError("'inputs' is empty: send one FP32 tensor [N, 29] or one tensor per feature")
    if len(inputs) == 1:
        tensor = inputs[0]
        shape = _shape(tensor)
        if len(shape) != 2 or shape[1] != N_FEATURES:
            raise PayloadError(
                f"input {tensor.name!r}: shape must be [N, {N_FEATURES}] (V1..V28, Amount per row), got {shape}"
            )
        _check_batch_size(shape[0], max_rows, f"input {tensor.name!r}")
        x = _tensor_values(tensor, shape[0] * N_FEATURES).reshape(shape[0], N_FEATURES)
        _check_amount(x, f"input {tensor.name!r}")
        return x
    names = [t.name for t in inputs]
    duplicates = sorted({n for n in names if names.count(n) > 1})
    if duplicates:
        raise PayloadError(f"inputs {duplicates} are given more than once")
    _check_keys(names, "inputs")
    n_rows: int | None = None
    columns: dict[str, np.ndarray] = {}
    for tensor in inputs:
        shape = _shape(tensor)
        if len(shape) not in (1, 2) or (len(shape) == 2 and shape[1] != 1):
            raise PayloadError(f"input {tensor.name!r}: shape must be [N] or [N, 1], got {shape}")
        if n_rows is None:
            n_rows = shape[0]
            _check_batch_size(n_rows, max_rows, f"input {tensor.name!r}")
        elif shape[0] != n_rows:
            raise PayloadError(f"input {tensor.name!r} has {shape[0]} rows, input {inputs[0].name!r} has {n_rows}")
        columns[tensor.name] = _tensor_values(tensor, shape[0])
    x = np.stack([columns[name] for name in FEATURES], axis=1)
    _check_amount(x, "inputs")
    return x


@dataclass(frozen=True)
class V2Body:
    """The parts of a V2 JSON inference request, structurally checked."""

    inputs: list[TensorInput]
    outputs: list[tuple[str, dict[str, Any] | None]]
    request_id: str | None
    parameters: dict[str, Any] | None


def _field(obj: Mapping[str, Any], key: str, kind: type | tuple[type, ...], where: str) -> Any:
    if key not in obj:
        raise PayloadError(f"{where}: '{key}' is required")
    value = obj[key]
    if not isinstance(value, kind) or isinstance(value, bool):
        names = " or ".join(k.__name__ for k in (kind if isinstance(kind, tuple) else (kind,)))
        raise PayloadError(f"{where}.{key}: expected {names}, got {describe(value)}")
    return value


def parse_v2_body(body: Any) -> V2Body:
    """Check the structure of a decoded V2 (Open Inference Protocol) JSON request.

    Raises:
        PayloadError: naming the missing or mistyped field (``inputs[1].shape: ...``).
    """
    if not isinstance(body, Mapping):
        raise PayloadError(f"request body must be a JSON object, got {describe(body)}")
    if "inputs" not in body and "instances" in body:
        raise PayloadError("'instances' is a V1 body: send it to /v1/models/<name>:predict, or use 'inputs' here")
    raw_inputs = _field(body, "inputs", list, "body")
    inputs = []
    for i, item in enumerate(raw_inputs):
        where = f"inputs[{i}]"
        if not isinstance(item, Mapping):
            raise PayloadError(f"{where}: expected an object with name, shape, datatype and data")
        shape = _field(item, "shape", list, where)
        inputs.append(
            TensorInput(
                name=_field(item, "name", str, where),
                shape=shape,
                datatype=_field(item, "datatype", str, where),
                data=_field(item, "data", list, where),
            )
        )
    outputs: list[tuple[str, dict[str, Any] | None]] = []
    for i, item in enumerate(body.get("outputs") or []):
        if not isinstance(item, Mapping):
            raise PayloadError(f"outputs[{i}]: expected an object with a name")
        parameters = item.get("parameters")
        outputs.append((_field(item, "name", str, f"outputs[{i}]"), dict(parameters) if parameters else None))
    parameters = body.get("parameters")
    if parameters is not None and not isinstance(parameters, Mapping):
        raise PayloadError(f"parameters: expected an object, got {describe(parameters)}")
    request_id = body.get("id")
    return V2Body(
        inputs=inputs,
        outputs=outputs,
        request_id=None if request_id is None else str(request_id),
        parameters=dict(parameters) if parameters else None,
    )
