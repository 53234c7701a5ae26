"""Command-line options derived from a process's settings, so its options and its ``FRAUD_*`` variables cannot
drift: one ``--option`` per setting, with the setting's type, choices, default and description as its help.

An option not given stays None and the settings object decides (the environment, then the declared default),
as ``python -m serving`` and ``python -m streaming`` do.
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Literal, TypeVar, get_args, get_origin

from pydantic import BaseModel, ValidationError
from pydantic_settings import BaseSettings

Settings = TypeVar("Settings", bound=BaseSettings)


def _value_type(annotation: Any) -> Any:
    """How argparse converts the text of an option: numbers and paths as such, models and maps as JSON."""
    options = [a for a in get_args(annotation) if a is not type(None)] if get_origin(annotation) else [annotation]
    kind = options[0] if len(options) == 1 else str
    if kind in (int, float, Path):
        return kind
    if (isinstance(kind, type) and issubclass(kind, BaseModel)) or get_origin(kind) is dict:
        return json.loads
    return str


def add_options(parser: argparse.ArgumentParser, kind: type[BaseSettings], names: Sequence[str] | None = None) -> None:
    """One ``--option`` per setting of ``kind`` (or of ``names``), each defaulting to None (= not given)."""
    for name in names or list(kind.model_fields):
        field = kind.model_fields[name]
        description = " ".join((field.description or "").replace("``", "").split())
        default = "required" if field.is_required() else f"default: {field.get_default(call_default_factory=True)}"
        options: dict[str, Any] = {
            "dest": name,
            "default": None,
            "help": f"{description} ({default}) [FRAUD_{name.upper()}]",
        }
        if get_origin(field.annotation) is Literal:
            options["choices"] = list(get_args(field.annotation))
        else:
            options["type"] = _value_type(field.annotation)
        parser.add_argument("--" + name.replace("_", "-"), **options)


def build(kind: type[Settings], arguments: argparse.Namespace, parser: argparse.ArgumentParser) -> Settings:
    """The settings: options given, over ``FRAUD_*`` variables, over the declared defaults. A missing or invalid
    value ends the program through ``parser.error``, naming the option and its variable."""
    given = {name: value for name in kind.model_fields if (value := getattr(arguments, name, None)) is not None}
    try:
        return kind(**given)
    except ValidationError as error:
        problems = [
            f"--{str(problem['loc'][0]).replace('_', '-')} (FRAUD_{str(problem['loc'][0]).upper()}): {problem['msg']}"
            for problem in error.errors()
        ]
        parser.error("; ".join(problems))
