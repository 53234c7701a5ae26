"""One parser per kind of value a knob or a pipeline parameter takes, built on pydantic.

Each kind is an annotated type: pydantic validates a typed value (from Python or JSON) and, through the
``BeforeValidator``, the text a command line gives. The knob declarations (:mod:`fraud_detection.config`) are
written in these types, so ``fraud run``, ``fraud submit`` and the components parse a value the same way:

* :data:`Flag`: ``1/0``, ``true/false``, ``yes/no``, ``on/off`` (any case), or a bool;
* :data:`Whole` and :data:`Number`: a number (never a bool; never inf or NaN), from text too;
* :data:`Text`: text, never a number;
* :data:`ListOf`: a JSON list (``[0, 0.05]``) or comma-separated items (``0,0.05``, ``random,targeted``), at
  least one item, each item parsed as its own kind;
* :data:`JsonObject`: a JSON object (a pipeline parameter of KFP's ``STRUCT`` type);
* bounded numbers: :data:`Count` (from 1), :data:`NonNegative`, :data:`Positive`, :data:`Share` (0 to 1) and
  :data:`PositiveShare`.

A value that does not parse raises pydantic's ``ValidationError``; :func:`problems` words each of its errors
as one line naming the parameter at fault.
"""

from __future__ import annotations

import json
from typing import Annotated, Any, Literal, TypeVar, get_args, get_origin

from pydantic import BeforeValidator, Field, ValidationError
from pydantic_core import ErrorDetails

TRUE_WORDS = ("1", "true", "yes", "on")
FALSE_WORDS = ("0", "false", "no", "off")


def _flag(value: Any) -> Any:
    if isinstance(value, str):
        word = value.strip().lower()
        if word not in TRUE_WORDS + FALSE_WORDS:
            raise ValueError(f"must be true or false (1/0, true/false, yes/no, on/off), got {value!r}")
        return word in TRUE_WORDS
    return value


def _no_bool(what: str) -> Any:
    def check(value: Any) -> Any:
        if isinstance(value, bool):
            raise ValueError(f"must be {what}, got {value!r}")
        return value

    return BeforeValidator(check)


def json_of(text: str | bytes, expected: type) -> Any:
    """``text`` parsed as JSON, which must be an ``expected`` (list, dict); else ValueError saying so."""
    try:
        value = json.loads(text)
    except json.JSONDecodeError as error:
        raise ValueError(f"must be a JSON {expected.__name__}: {error}") from error
    if not isinstance(value, expected):
        raise ValueError(f"must be a JSON {expected.__name__}, got {text!r}")
    return value


def _items(value: Any) -> Any:
    if not isinstance(value, str):
        return value
    text = value.strip()
    if text.startswith(("[", "{")):
        return json_of(text, list)
    return [part.strip() for part in text.split(",") if part.strip()]


def _object(value: Any) -> Any:
    return json_of(value.strip(), dict) if isinstance(value, str) else value


T = TypeVar("T")

Flag = Annotated[bool, BeforeValidator(_flag)]
"""True or false: a bool, or 1/0, true/false, yes/no, on/off."""
Whole = Annotated[int, _no_bool("a whole number")]
"""A whole number (``3`` or ``3.0``, from text too)."""
Number = Annotated[float, _no_bool("a number"), Field(allow_inf_nan=False)]
"""A finite number."""
Text = str
"""Text (pydantic never turns a number into text)."""
ListOf = Annotated[list[T], BeforeValidator(_items), Field(min_length=1)]
"""A non-empty list: a JSON list or comma-separated items, each parsed as ``T``."""
JsonObject = Annotated[dict[str, Any], BeforeValidator(_object)]
"""A JSON object."""


Count = Annotated[Whole, Field(ge=1)]
"""A knob counting something there must be at least one of (rows, rounds, epochs, workers)."""

NonNegative = Annotated[Number, Field(ge=0)]
"""A knob that is a number from 0 up (a weight, a tolerance, a ratio floor, seconds)."""

Positive = Annotated[Number, Field(gt=0)]
"""A knob that is a number above 0 (a rate, a window share checked together with the others)."""

Share = Annotated[Number, Field(ge=0, le=1)]
"""A knob that is a share from 0 to 1."""

PositiveShare = Annotated[Number, Field(gt=0, le=1)]
"""A knob that is a share above 0, up to 1 (a sampling rate: 0 would keep nothing)."""


def _strip(annotation: Any) -> Any:
    """``annotation`` without its ``Annotated`` layers."""
    while get_origin(annotation) is Annotated:
        annotation = get_args(annotation)[0]
    return annotation


def kind_of(annotation: Any) -> type:
    """The Python type the pipeline signature and KFP see: str, int, float, bool or list."""
    bare = _strip(annotation)
    if get_origin(bare) is list:
        return list
    if get_origin(bare) is Literal:
        return type(get_args(bare)[0])
    return bare


def choices_of(annotation: Any) -> tuple[str, ...]:
    """The allowed values of a choice knob, or of the items of a list of choices."""
    bare = _strip(annotation)
    if get_origin(bare) is list:
        return choices_of(get_args(bare)[0])
    return tuple(str(c) for c in get_args(bare)) if get_origin(bare) is Literal else ()


_WORDS = {
    "greater_than_equal": "must be >= {ge:g}",
    "greater_than": "must be > {gt:g}",
    "less_than_equal": "must be <= {le:g}",
    "less_than": "must be < {lt:g}",
    "int_type": "must be a whole number",
    "int_parsing": "must be a whole number",
    "int_from_float": "must be a whole number",
    "float_type": "must be a number",
    "float_parsing": "must be a number",
    "finite_number": "must be a number",
    "string_type": "must be text",
    "bool_type": "must be true or false (1/0, true/false, yes/no, on/off)",
    "bool_parsing": "must be true or false (1/0, true/false, yes/no, on/off)",
    "list_type": "must be a list (JSON, or comma-separated)",
    "too_short": "must be a non-empty list",
    "dict_type": "must be a JSON object",
}
"""How each pydantic error type is worded after the parameter's name (the value follows as ``got ...``)."""


def problem(error: ErrorDetails, choices: dict[str, tuple[str, ...]] | None = None) -> str:
    """One pydantic error as one line that names the parameter (``poison_kinds item`` for a list item).

    ``error["loc"]`` starts with the parameter's name; an error without one (a rule over several knobs) is
    its message alone, which names the parameters itself. ``choices`` gives the allowed values per name.
    """
    names = [part for part in error["loc"] if isinstance(part, str)]
    name = names[-1] if names else ""
    where = f"{name} item" if error["loc"] and isinstance(error["loc"][-1], int) else name
    kind, ctx = error["type"], error.get("ctx", {})
    if kind == "extra_forbidden":
        return f"unknown parameter {name!r}"
    if kind == "value_error":
        message = str(ctx.get("error", error["msg"]))
        return f"{where} {message}" if where else message
    if kind == "literal_error":
        allowed = ", ".join((choices or {}).get(name, ())) or ctx.get("expected", "")
        return f"{where} must be one of {allowed}, got {error['input']!r}"
    words = _WORDS.get(kind)
    if words is None:
        return f"{where}: {error['msg']}, got {error['input']!r}"
    return f"{where} {words.format(**ctx)}, got {error['input']!r}"


def problems(error: ValidationError, choices: dict[str, tuple[str, ...]] | None = None) -> list[str]:
    """Every error of ``error``, each worded by :func:`problem`."""
    return [problem(e, choices) for e in error.errors()]
