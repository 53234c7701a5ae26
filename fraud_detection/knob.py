"""One knob as the pipeline, the CLI and the checks see it, and the error naming the knobs at fault.

The knob groups that declare them are in :mod:`fraud_detection.config`; light on purpose (pydantic and the
standard library), as that module is.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from pydantic import TypeAdapter, ValidationError

from fraud_detection.parsers import problem


class ConfigError(ValueError):
    """One or more parameters are invalid; the message names each parameter at fault, one per line."""

    def __init__(self, *problems: str) -> None:
        super().__init__("invalid pipeline parameters:\n  " + "\n  ".join(problems))
        self.problems = list(problems)


@dataclass(frozen=True)
class Knob:
    """One knob as the pipeline, the CLI and the checks see it (derived from its group's field)."""

    name: str
    type: type
    """str, int, float, bool or list: the pipeline signature's annotation and KFP's parameter type."""
    default: Any
    doc: str
    group: str
    choices: tuple[str, ...]
    """For a choice knob, the allowed values; for a list of choices, the allowed items."""
    annotation: Any
    """The field's full type, bounds included; :meth:`parse` validates against it."""

    def parse(self, value: Any) -> Any:
        """``value`` (text from a command line, or a typed value) as this knob's kind, within its bounds and
        choices; rules over several knobs are :func:`check_parameters`'s.

        Raises:
            ConfigError: naming the knob, the rule and the value.
        """
        try:
            return TypeAdapter(self.annotation).validate_python(value)
        except ValidationError as error:
            choices = {self.name: self.choices}
            raise ConfigError(
                *(problem({**e, "loc": (self.name, *e["loc"])}, choices) for e in error.errors())
            ) from None
