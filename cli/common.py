"""What every ``fraud`` subcommand shares: the help formatter and the option parsers."""

from __future__ import annotations

import argparse
import json
from collections.abc import Callable
from typing import Any


def parse_bool(text: str) -> bool:
    """A true/false option: 1/0, true/false, yes/no, on/off."""
    lowered = text.strip().lower()
    if lowered in ("1", "true", "yes", "on"):
        return True
    if lowered in ("0", "false", "no", "off"):
        return False
    raise argparse.ArgumentTypeError(f"expected true or false, got {text!r}")


def parse_list(text: str) -> list[Any]:
    """A list option: JSON (``[0, 0.05]``) or comma-separated (``0,0.05`` or ``random,targeted``)."""
    text = text.strip()
    if text.startswith("["):
        try:
            value = json.loads(text)
        except json.JSONDecodeError as error:
            raise argparse.ArgumentTypeError(f"not a JSON list: {error}") from error
        if not isinstance(value, list):
            raise argparse.ArgumentTypeError("expected a list")
        return value
    items: list[Any] = []
    for part in (p.strip() for p in text.split(",") if p.strip()):
        try:
            items.append(float(part))
        except ValueError:
            items.append(part)
    return items


class DefaultsFormatter(argparse.ArgumentDefaultsHelpFormatter):
    """Shows defaults, except where the default is resolved at run time (None)."""

    def _get_help_string(self, action: argparse.Action) -> str | None:
        if action.default is None:
            return action.help
        return super()._get_help_string(action)


def typed_list(element: type) -> Callable[[str], list[Any]]:
    """A list option whose items must all be of the default's element type (numbers stay numbers)."""

    def parse(text: str) -> list[Any]:
        items = parse_list(text)
        numeric = element in (int, float)
        bad = [i for i in items if isinstance(i, str) == numeric]
        if bad:
            raise argparse.ArgumentTypeError(f"expected {element.__name__} items, got {bad[0]!r}")
        if not items:
            raise argparse.ArgumentTypeError("expected at least one item")
        return items

    return parse
