"""Command-line options generated from a settings model, so a process's options and its settings cannot drift."""

from __future__ import annotations

import argparse
from typing import Any

from pydantic import BaseModel


def add_options(parser: argparse.ArgumentParser, settings: type[BaseModel]) -> None:
    """One ``--option`` per field of ``settings``: required when the field is, its description and default as help."""
    for name, spec in settings.model_fields.items():
        default = "" if spec.is_required() else f" (default: {spec.default})"
        parser.add_argument(
            f"--{name.replace('_', '-')}", dest=name, required=spec.is_required(), help=f"{spec.description}{default}"
        )


def given(arguments: argparse.Namespace, settings: type[BaseModel]) -> dict[str, Any]:
    """The options given on the command line, by field name (the model fills in the rest)."""
    return {name: value for name in settings.model_fields if (value := getattr(arguments, name, None)) is not None}
