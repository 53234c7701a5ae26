"""What every ``fraud`` subcommand shares: the help formatter, and the option type of a pipeline knob."""

from __future__ import annotations

import argparse
from collections.abc import Callable
from typing import Any

from fraud_detection.config import ConfigError, Knob


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults (a list as the comma-separated text the option takes), except where the default is
    resolved at run time (None)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        if isinstance(action.default, list):
            text = ",".join(str(item) for item in action.default).replace("%", "%%")
            return f"{action.help} (default: {text})"
        return super()._get_help_string(action)


def knob_option(knob: Knob) -> Callable[[str], Any]:
    """The argparse ``type`` of a knob's option: the knob's own parser (the one ``fraud submit`` and the
    components use), its refusal shown as argparse's."""

    def parse(text: str) -> Any:
        try:
            return knob.parse(text)
        except ConfigError as error:
            raise argparse.ArgumentTypeError("; ".join(error.problems)) from None

    parse.__name__ = knob.name
    return parse


def command(subparsers: Any, name: str, **options: Any) -> argparse.ArgumentParser:
    """Add the ``fraud`` subcommand ``name`` (``help``, ``description``, ``parents``, ... as argparse takes them),
    its help showing each option's default."""
    parser: argparse.ArgumentParser = subparsers.add_parser(name, formatter_class=DefaultsFormatter, **options)
    return parser
