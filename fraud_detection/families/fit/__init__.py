"""Fitting each family and the blend: the bake-off's candidates (scikit-learn and XGBoost; serving never imports
this package).

Every family is fitted on the training window, stops early on the validation window's AUPRC, is calibrated (its
output is a fraud probability, not an inflated score) and gets its decision threshold from the validation window
(:func:`fraud_detection.metrics.choose_threshold`). The winner is chosen on validation AUPRC alone; the test
window is only reported. One module per family, each a :data:`~fraud_detection.families.fit.base.Fitter`:

* ``xgboost`` (:mod:`.xgboost`): :func:`fraud_detection.boosting.train_booster`.
* ``mlp`` (:mod:`.mlp`): scikit-learn's ``MLPClassifier`` one epoch at a time, the best validation epoch kept.
* ``blend`` (:mod:`.blend`): a logistic regression over the parts' log-odds, fitted on the validation window.
"""

from __future__ import annotations

import numpy as np

from fraud_detection.boosting import TrainParams
from fraud_detection.families import MLP, XGBOOST
from fraud_detection.families.fit import mlp, xgboost
from fraud_detection.families.fit.base import FamilyFit, FitData, Fitter
from fraud_detection.families.fit.baseline import logistic_baseline
from fraud_detection.families.fit.blend import fit_blend
from fraud_detection.families.fit.xgboost import xgboost_fit

FITTERS: dict[str, Fitter] = {XGBOOST: xgboost.fit, MLP: mlp.fit}
"""Each family the train step can fit, and its fitter."""


def fit_family(
    family: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    params: TrainParams,
    sample_weight: np.ndarray | None = None,
) -> FamilyFit:
    """Fit one family (``xgboost`` or ``mlp``) with the run's knobs.

    ``sample_weight`` (per training row) makes up for sampled legitimate rows (weight ``1/share``, see
    :mod:`fraud_detection.sampling`); the fraud weight and its correction then count legitimate rows by weight.
    """
    if family not in FITTERS:
        raise ValueError(f"unknown model family {family!r}: expected one of {XGBOOST}, {MLP}")
    return FITTERS[family](FitData(x_train, y_train, x_valid, y_valid, sample_weight), params)


__all__ = ["FITTERS", "FamilyFit", "FitData", "fit_blend", "fit_family", "logistic_baseline", "xgboost_fit"]
