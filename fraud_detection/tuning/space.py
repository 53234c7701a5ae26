"""A family's search space as data: each parameter's range, scale and the condition it applies under.

Declared once beside each family's fitter (``SEARCH_SPACE`` in :mod:`fraud_detection.families.fit.xgboost` and
:mod:`~fraud_detection.families.fit.mlp`), it renders to Optuna here (:meth:`SearchSpace.suggest`) and to a Katib
``Experiment`` in :mod:`ops.katib`; :meth:`SearchSpace.parse` reads a trial's values back from text.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING, Literal, Self, cast

from pydantic import BaseModel, ConfigDict, Field, model_validator

if TYPE_CHECKING:
    import optuna

    from fraud_detection.boosting import TrainParams
    from fraud_detection.families.fit.base import FamilyFit, FitData

Value = int | float | str
"""One parameter's value in a trial."""


class Parameter(BaseModel):
    """One tuned parameter: a number range (``float`` or ``int``, uniform or log scale) or a list of choices."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    name: str
    kind: Literal["float", "int", "categorical"]
    low: float = 0.0
    high: float = 0.0
    log: bool = Field(default=False, description="sample uniformly on the log scale (ranges of positive numbers)")
    choices: tuple[Value, ...] = ()
    when: dict[str, tuple[Value, ...]] = Field(
        default_factory=dict, description="applies only when each named parameter has one of these values"
    )

    @model_validator(mode="after")
    def _range_or_choices(self) -> Self:
        if self.kind == "categorical":
            if not self.choices or self.log:
                raise ValueError(f"{self.name}: a categorical parameter needs choices and no log scale")
        elif not self.low < self.high or self.choices or (self.log and self.low <= 0):
            raise ValueError(f"{self.name}: a range needs low < high (low > 0 on a log scale) and no choices")
        return self

    def parse(self, text: Value) -> Value:
        """``text`` (a command-line argument or a value) as this parameter's kind, checked against its range."""
        if self.kind == "categorical":
            found = [c for c in self.choices if str(c) == str(text)]
            if not found:
                raise ValueError(f"{self.name}: {text!r} is not one of {list(self.choices)}")
            return found[0]
        number = float(text)
        if self.kind == "int" and not number.is_integer():
            raise ValueError(f"{self.name}: {text!r} is not a whole number")
        if not (self.low <= number <= self.high) or math.isnan(number):
            raise ValueError(f"{self.name}: {text!r} is outside [{self.low:g}, {self.high:g}]")
        return number if self.kind == "float" else int(number)


class SearchSpace(BaseModel):
    """Every tuned parameter of one family, in the order they are drawn (a condition names an earlier one)."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    family: str
    parameters: tuple[Parameter, ...]

    @model_validator(mode="after")
    def _conditions_name_earlier_parameters(self) -> Self:
        seen: set[str] = set()
        for p in self.parameters:
            if p.name in seen or not set(p.when) <= seen:
                raise ValueError(f"{p.name}: repeated, or its condition names a later or unknown parameter")
            seen.add(p.name)
        return self

    def active(self, values: Mapping[str, Value]) -> list[Parameter]:
        """The parameters that apply given ``values`` (the others' values are ignored)."""
        return [p for p in self.parameters if all(values.get(k) in allowed for k, allowed in p.when.items())]

    def suggest(self, trial: optuna.Trial) -> dict[str, Value]:
        """One trial's values, drawn by Optuna's sampler; parameters whose condition fails are left out."""
        values: dict[str, Value] = {}
        for p in self.parameters:
            if not all(values.get(k) in allowed for k, allowed in p.when.items()):
                continue
            if p.kind == "categorical":
                values[p.name] = cast(Value, trial.suggest_categorical(p.name, list(p.choices)))
            elif p.kind == "int":
                values[p.name] = trial.suggest_int(p.name, int(p.low), int(p.high), log=p.log)
            else:
                values[p.name] = trial.suggest_float(p.name, p.low, p.high, log=p.log)
        return values

    def parse(self, texts: Mapping[str, Value]) -> dict[str, Value]:
        """A trial's values from text (Katib's arguments), each checked; those whose condition fails are dropped.

        Raises:
            ValueError: naming an unknown parameter, a missing one or a value out of range.
        """
        known = {p.name: p for p in self.parameters}
        unknown = sorted(set(texts) - set(known))
        if unknown:
            raise ValueError(f"{self.family}: unknown tuning parameters {unknown}")
        values: dict[str, Value] = {}
        for p in self.parameters:
            if not all(values.get(k) in allowed for k, allowed in p.when.items()):
                continue
            if p.name not in texts:
                raise ValueError(f"{self.family}: tuning parameter {p.name!r} is missing")
            values[p.name] = p.parse(texts[p.name])
        return values


@dataclass(frozen=True)
class Tunable:
    """What the tuner needs of a family: its space, how values become train parameters and back, and a fitter
    that reports its validation AUPRC as it goes (``report(step, auprc)`` may raise to stop a hopeless trial)."""

    space: SearchSpace
    apply: Callable[[TrainParams, Mapping[str, Value]], TrainParams]
    current: Callable[[TrainParams], dict[str, Value]]
    """The values that reproduce the fixed settings (the first trial, so tuning never starts below them)."""
    fit: Callable[..., FamilyFit]
    """``fit(data: FitData, params: TrainParams, report=None)``."""
    warmup_steps: int
    """Steps (rounds or epochs) before a trial may be pruned."""

    def fit_with(self, data: FitData, params: TrainParams, report: Callable[[int, float], None] | None) -> FamilyFit:
        """Fit the family with ``params``, reporting progress to ``report``."""
        return self.fit(data, params, report=report)
