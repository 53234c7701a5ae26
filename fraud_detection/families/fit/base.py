"""What fitting any family takes and gives: :class:`FitData` in, :class:`FamilyFit` out (the :data:`Fitter`)."""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import numpy as np

from fraud_detection.families.base import FamilyModel

if TYPE_CHECKING:
    from fraud_detection.boosting import TrainParams


@dataclass(frozen=True)
class FitData:
    """The windows a family is fitted on: training rows (float32, :data:`~fraud_detection.schema.FEATURES`
    order) and 0/1 labels, and the validation window that stops training early and picks the threshold."""

    x_train: np.ndarray
    y_train: np.ndarray
    x_valid: np.ndarray
    y_valid: np.ndarray
    sample_weight: np.ndarray | None = None
    """Per training row: ``1/share`` for sampled legitimate rows (:mod:`fraud_detection.sampling`); the fraud
    weight and its correction then count legitimate rows by weight."""


@dataclass
class FamilyFit:
    """A trained candidate and what was decided on the validation window."""

    family: str
    model: FamilyModel
    threshold: float
    validation_scores: np.ndarray
    seconds: float
    details: dict[str, float] = field(default_factory=dict)
    """Family-specific numbers worth logging (rounds, epochs, blend weights), keyed by
    :class:`fraud_detection.metrics.Detail` or :func:`fraud_detection.metrics.blend_weight`."""


Fitter = Callable[[FitData, "TrainParams"], FamilyFit]
"""How each family module fits its candidate: the windows and the run's knobs in, the candidate out."""
