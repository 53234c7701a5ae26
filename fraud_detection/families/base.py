"""The one protocol every family's trained model follows (:class:`FamilyModel`), and what the families share.

A family module (:mod:`~fraud_detection.families.xgboost`, :mod:`~fraud_detection.families.mlp`,
:mod:`~fraud_detection.families.blend`) keeps its model's files in its own format, scores, explains and loads it;
:func:`fraud_detection.families.models.load` picks the family a model directory names.
"""

from __future__ import annotations

from pathlib import Path
from typing import Protocol

import numpy as np


class ModelFileError(RuntimeError):
    """A model file is missing or unreadable; the message names the file and why."""


class FamilyModel(Protocol):
    """What every trained model offers, whatever its family."""

    family: str

    def logit(self, x: np.ndarray) -> np.ndarray:
        """Log-odds of fraud per row of a float32 matrix in :data:`FEATURES` order."""
        ...

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        """Fraud probability per row (float64)."""
        ...

    def explain(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """(contributions of shape (n, 29), base values of shape (n,)), in log-odds; each row sums exactly to
        the row's log-odds."""
        ...

    def files(self) -> list[str]:
        """The file names this model occupies in a model directory."""
        ...

    def save(self, directory: Path) -> None:
        """Write this model's files into ``directory``."""
        ...

    def set_threads(self, threads: int) -> None:
        """Limit the threads one scoring call may use (0 = library default)."""
        ...


def sigmoid(z: np.ndarray) -> np.ndarray:
    """The logistic function, without overflow warnings."""
    return 0.5 * (1.0 + np.tanh(0.5 * np.asarray(z, dtype=np.float64)))
