"""Command-line options derived from a process's settings (pydantic-settings, ``FRAUD_*``), so a process's options
and its environment variables cannot drift: one ``--option`` per setting, with the setting's type, choices,
default and description as its help. The model server, the stream scorer and the loop's processes use it.

An option not given stays at its parser default (None: the settings object decides, from the environment, then
the declared default).
"""

from __future__ import annotations

import argparse
import json
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import Any, Literal, get_args, get_origin

from pydantic import BaseModel
from pydantic_settings import BaseSettings


def _value_type(annotation: Any) -> Any:
    """How argparse converts an option's text: numbers and paths as such, models and maps as JSON, else text."""
    options = [a for a in get_args(annotation) if a is not type(None)] if get_origin(annotation) else [annotation]
    kind = options[0] if len(options) == 1 else str
    if kind in (int, float, Path):
        return kind
    if (isinstance(kind, type) and issubclass(kind, BaseModel)) or get_origin(kind) is dict:
        return json.loads
    return str


def add_setting_options(
    parser: argparse.ArgumentParser,
    kind: type[BaseSettings],
    names: Sequence[str] | None = None,
    default: Any = None,
    flags: Mapping[str, str] | None = None,
) -> None:
    """One option per setting of ``kind`` (or of ``names``), spelled ``--setting-name`` unless ``flags`` says else.

    Every option defaults to ``default``: None (= not given), or ``argparse.SUPPRESS`` for a subcommand repeating
    its parent's options (so an option given before the subcommand is kept).
    """
    for name in names or list(kind.model_fields):
        field = kind.model_fields[name]
        description = " ".join((field.description or "").replace("``", "").split())
        shown = "required" if field.is_required() else f"default: {field.get_default(call_default_factory=True)}"
        options: dict[str, Any] = {
            "dest": name,
            "default": default,
            "help": f"{description} ({shown}) [FRAUD_{name.upper()}]",
        }
        if get_origin(field.annotation) is Literal:
            options["choices"] = list(get_args(field.annotation))
        else:
            options["type"] = _value_type(field.annotation)
        parser.add_argument((flags or {}).get(name, "--" + name.replace("_", "-")), **options)
