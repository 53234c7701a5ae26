"""Command-line options derived from a process's settings, so its options and its ``FRAUD_*`` variables cannot
drift: one ``--option`` per setting, with the setting's type, choices, default and description as its help.

An option not given stays None and the settings object decides (the environment, then the declared default),
as ``python -m serving`` and ``python -m streaming`` do.
"""

from __future__ import annotations

import argparse
from collections.abc import Sequence
from typing import TypeVar

from pydantic import ValidationError
from pydantic_settings import BaseSettings

from fraud_detection.setting_options import add_setting_options

Settings = TypeVar("Settings", bound=BaseSettings)


def add_options(parser: argparse.ArgumentParser, kind: type[BaseSettings], names: Sequence[str] | None = None) -> None:
    """One ``--option`` per setting of ``kind`` (or of ``names``), each defaulting to None (= not given)."""
    add_setting_options(parser, kind, names)


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
