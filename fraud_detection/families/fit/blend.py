"""Fitting the blend: a logistic stack over the fitted parts' validation log-odds.

Fitted on the validation window (three numbers for two parts, so it cannot memorise the window it is then
judged on); its threshold is chosen on the same window.
"""

from __future__ import annotations

import time

import numpy as np

from fraud_detection.families import BLEND
from fraud_detection.families.blend import BlendModel
from fraud_detection.families.fit.base import FamilyFit
from fraud_detection.metrics import blend_weight, choose_threshold


def fit_blend(parts: list[FamilyFit], x_valid: np.ndarray, y_valid: np.ndarray, beta: float = 1.0) -> FamilyFit:
    """A logistic stack over the parts' validation log-odds; its threshold is chosen on the same window."""
    from sklearn.linear_model import LogisticRegression

    if len(parts) < 2:
        raise ValueError(f"a blend needs at least two families, got {[p.family for p in parts]}")
    started = time.perf_counter()
    logits = np.column_stack([p.model.logit(x_valid) for p in parts])
    stack = LogisticRegression(C=1.0, max_iter=1000).fit(logits, y_valid)
    weights = {p.family: float(w) for p, w in zip(parts, stack.coef_[0], strict=True)}
    model = BlendModel({p.family: p.model for p in parts}, weights, float(stack.intercept_[0]))
    valid_scores = model.predict_proba(x_valid)
    threshold = choose_threshold(y_valid, valid_scores, beta)
    return FamilyFit(
        family=BLEND,
        model=model,
        threshold=threshold,
        validation_scores=valid_scores,
        seconds=time.perf_counter() - started,
        details={blend_weight(name): w for name, w in weights.items()},
    )
