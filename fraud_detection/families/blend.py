"""The blend's model: a logistic stack over its parts' log-odds.

It keeps both parts' files, and in the metadata the stack's weights and intercept: the blend's log-odds are
``intercept + sum(weight[f] * log-odds of part f)`` (a logistic regression fitted on the validation window over
the parts' log-odds). Its explanation is the weighted sum of its parts' contributions (and of their base values,
plus the intercept).
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path

import numpy as np

from fraud_detection.families import BLEND
from fraud_detection.families.base import FamilyModel, sigmoid


class BlendModel:
    """A logistic stack over its parts' log-odds."""

    family = BLEND

    def __init__(self, parts: Mapping[str, FamilyModel], weights: Mapping[str, float], intercept: float) -> None:
        if set(parts) != set(weights):
            raise ValueError(f"blend parts {sorted(parts)} and weights {sorted(weights)} differ")
        self.parts = dict(parts)
        self.weights = {name: float(weights[name]) for name in parts}
        self.intercept = float(intercept)

    def logit(self, x: np.ndarray) -> np.ndarray:
        total = np.full(len(x), self.intercept)
        for name, part in self.parts.items():
            total += self.weights[name] * part.logit(x)
        return total

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return sigmoid(self.logit(x))

    def explain(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        contributions = np.zeros(x.shape)
        base = np.full(len(x), self.intercept)
        for name, part in self.parts.items():
            c, b = part.explain(x)
            contributions += self.weights[name] * c
            base += self.weights[name] * b
        return contributions, base

    def files(self) -> list[str]:
        return [f for part in self.parts.values() for f in part.files()]

    def save(self, directory: Path) -> None:
        for part in self.parts.values():
            part.save(directory)

    def set_threads(self, threads: int) -> None:
        for part in self.parts.values():
            part.set_threads(threads)
