"""Explanations of the model's scores: per-feature contributions (SHAP values) on the test window.

Explanations follow the bake-off's winner. For XGBoost they are exact TreeSHAP values (``pred_contribs``);
for the MLP, DeepLIFT contributions against the training mean; for the blend, the weighted sum of its parts'
(see :mod:`fraud_detection.families.models`). All are in log-odds units and add up to the model's log-odds
for each row; reports call them SHAP values, which they are exactly for trees. Global importance is the mean
absolute SHAP value per feature on a sample of test rows (all test frauds plus a seeded sample of legitimate
rows); a beeswarm plot shows direction (colour = the feature's value). Local explanations list the largest
contributions for the top-k test transactions by score.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
from pydantic import Field
from pydantic.dataclasses import dataclass as checked_dataclass

from fraud_detection.audits.jsonable import json_safe
from fraud_detection.schema import FEATURES, matrix_names


@checked_dataclass(frozen=True)
class ExplainParams:
    """Knobs of the SHAP part."""

    sample_rows: int = Field(default=2000, ge=10)
    """Rows for global importance: every test fraud plus legitimate rows up to this total (seeded)."""
    top_k: int = Field(default=5, ge=1)
    """Local explanations for the k highest-scored test transactions."""
    top_features: int = Field(default=6, ge=1)
    """Contributions listed per local explanation."""
    seed: int = 0


EXPLAINERS = {
    "xgboost": "exact TreeSHAP values from XGBoost",
    "mlp": "DeepLIFT contributions of the MLP against the training mean",
    "blend": "the blend's weighted sum of XGBoost's TreeSHAP values and the MLP's DeepLIFT contributions",
}
"""How each model family's contributions are computed, in the words the report uses."""


def explainer_of(model: Any) -> str:
    """The report's words for how ``model``'s contributions are computed (a bare booster: TreeSHAP)."""
    return EXPLAINERS.get(getattr(model, "family", "xgboost"), EXPLAINERS["xgboost"])


def shap_values(booster: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Per-feature contributions (contributions of shape (n, 29), bias of shape (n,)), log-odds units.

    A bare XGBoost booster gives exact TreeSHAP; a model of any family
    (:class:`fraud_detection.families.models.FamilyModel`) gives its own explanation (TreeSHAP for XGBoost,
    DeepLIFT for the MLP, their weighted sum for the blend), each summing exactly to the row's log-odds.
    """
    import xgboost as xgb

    if not isinstance(booster, xgb.Booster):
        contributions, base = booster.explain(x)
        return np.asarray(contributions, dtype=np.float64), np.asarray(base, dtype=np.float64)
    contribs = booster.predict(xgb.DMatrix(x, feature_names=matrix_names(x.shape[1])), pred_contribs=True)
    contribs = np.asarray(contribs, dtype=np.float64)
    return contribs[:, :-1], contribs[:, -1]


@dataclass(frozen=True)
class Contribution:
    """One feature's SHAP contribution to one row's score."""

    feature: str
    value: float
    """The feature's value in that row."""
    shap: float
    """Its SHAP value (log-odds)."""


@dataclass(frozen=True)
class LocalExplanation:
    """Why the model scored one test transaction as it did: its largest SHAP contributions."""

    row: int
    """Position in the test window."""
    score: float
    label: int
    base: float
    """The SHAP base value (log-odds) the contributions add to."""
    contributions: list[Contribution]
    """Largest first, by absolute SHAP value."""


@dataclass(frozen=True)
class Explanation:
    """Global SHAP importance on a sample of test rows and local explanations of the top-scored rows."""

    importance: dict[str, float]
    """Feature -> mean |SHAP| on the sample, largest first (every feature)."""
    local: list[LocalExplanation]
    """The top-k scored test transactions, highest score first."""
    sample_rows: int
    """Rows the global importance was measured on."""
    sample_shap: np.ndarray = field(repr=False)
    """SHAP values of the sample, shape (sample_rows, features), for the beeswarm plot."""
    sample_values: np.ndarray = field(repr=False)
    """Feature values of the sample, same shape."""
    features: tuple[str, ...] = FEATURES
    """The names of the sample's columns, in order (the public schema's, or a feature set's)."""

    def to_dict(self) -> dict[str, Any]:
        """``importance``, ``local`` and ``sample_rows`` as plain JSON (the per-row arrays are left out)."""
        return dict(
            json_safe(
                {
                    "importance": self.importance,
                    "local": [asdict(i) for i in self.local],
                    "sample_rows": self.sample_rows,
                }
            )
        )


def _explain_sample(y: np.ndarray, rows: int, seed: int) -> np.ndarray:
    fraud = np.flatnonzero(y == 1)
    legit = np.flatnonzero(y == 0)
    take = max(rows - fraud.size, 0)
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([fraud[:rows], rng.choice(legit, size=min(take, legit.size), replace=False)])
    return np.sort(chosen)


def explain(
    booster: Any,
    x_test: np.ndarray,
    y_test: np.ndarray,
    scores: np.ndarray,
    params: ExplainParams | None = None,
    feature_names: Sequence[str] = FEATURES,
) -> Explanation:
    """Global SHAP importance on a sample (every fraud plus seeded legitimate rows) and local explanations of
    the top-k scored test transactions; ``feature_names`` name ``x_test``'s columns."""
    params = params or ExplainParams()
    features = list(feature_names)
    sample = _explain_sample(np.asarray(y_test), params.sample_rows, params.seed)
    shap, _ = shap_values(booster, x_test[sample])
    importance = np.abs(shap).mean(axis=0)
    top = np.argsort(-np.asarray(scores), kind="stable")[: params.top_k]
    local_shap, local_base = shap_values(booster, x_test[top])
    local = []
    for j, row in enumerate(top):
        order = np.argsort(-np.abs(local_shap[j]))[: params.top_features]
        local.append(
            LocalExplanation(
                row=int(row),
                score=float(scores[row]),
                label=int(y_test[row]),
                base=float(local_base[j]),
                contributions=[
                    Contribution(feature=features[i], value=float(x_test[row, i]), shap=float(local_shap[j, i]))
                    for i in order
                ],
            )
        )
    ranked = sorted(zip(features, importance.tolist(), strict=True), key=lambda kv: -kv[1])
    return Explanation(
        importance=dict(ranked),
        local=local,
        sample_rows=int(sample.size),
        sample_shap=shap,
        sample_values=np.asarray(x_test[sample]),
        features=tuple(features),
    )


__all__ = [
    "EXPLAINERS",
    "Contribution",
    "ExplainParams",
    "Explanation",
    "LocalExplanation",
    "explain",
    "explainer_of",
    "shap_values",
]
