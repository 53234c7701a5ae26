"""A trained model of any family, loaded from a model directory by the family its metadata names.

Each family keeps its own files in its own format, in its own module:

``xgboost``  ``model.ubj`` (:mod:`fraud_detection.families.xgboost`)
``mlp``      ``mlp.npz`` (:mod:`fraud_detection.families.mlp`)
``blend``    both parts' files, and the stack in the metadata (:mod:`fraud_detection.families.blend`)

Every model follows :class:`~fraud_detection.families.base.FamilyModel`. Explanations are per-feature
contributions in log-odds that add up exactly to the model's log-odds.
"""

from __future__ import annotations

from collections.abc import Mapping
from pathlib import Path
from typing import Any

from fraud_detection.families import BLEND, MLP, XGBOOST
from fraud_detection.families.base import FamilyModel, ModelFileError, sigmoid
from fraud_detection.families.blend import BlendModel
from fraud_detection.families.mlp import MLP_FILE, MLPModel
from fraud_detection.families.xgboost import XGBOOST_FILE, XGBoostModel
from fraud_detection.schema import FEATURES

FILES: dict[str, str] = {XGBOOST: XGBOOST_FILE, MLP: MLP_FILE}
"""Each family's model file inside a model directory."""


def load(
    directory: Path,
    family: str,
    blend_weights: Mapping[str, float] | None = None,
    intercept: float = 0.0,
    n_features: int = len(FEATURES),
) -> Any:
    """Load a model of ``family`` over ``n_features`` inputs from ``directory`` (for a blend: its parts, then the
    given stack)."""
    if family == XGBOOST:
        return XGBoostModel.load(directory, n_features)
    if family == MLP:
        return MLPModel.load(directory, n_features)
    if family == BLEND:
        if not blend_weights:
            raise ModelFileError(f"{directory}: a blend needs its parts' weights in the metadata")
        parts = {name: load(directory, name, n_features=n_features) for name in blend_weights}
        return BlendModel(parts, blend_weights, intercept)
    raise ModelFileError(f"{directory}: unknown model family {family!r}")


__all__ = [
    "FILES",
    "MLP_FILE",
    "XGBOOST_FILE",
    "BlendModel",
    "FamilyModel",
    "MLPModel",
    "ModelFileError",
    "XGBoostModel",
    "load",
    "sigmoid",
]
