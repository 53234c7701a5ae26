"""Training each family and fitting the blend: the bake-off's candidates (scikit-learn and XGBoost).

Every family is trained on the training window, stops early on the validation window's AUPRC, is
calibrated (its output is a fraud probability, not an inflated score) and gets its decision threshold from
the validation window (:func:`fraud_detection.train.choose_threshold`). The winner is chosen on validation
AUPRC alone; the test window is only reported.

* ``xgboost``: :func:`fraud_detection.train.train_booster` (rules in :mod:`fraud_detection.train`).
* ``mlp``: scikit-learn's ``MLPClassifier`` (ReLU, Adam) on standardised features. Fraud rows get the same
  weight as in XGBoost (``sqrt(negatives/positives)`` unless ``scale_pos_weight`` is set); the output unit's
  bias is then moved by ``-log(weight)``, which undoes the weighting's shift of the odds. One epoch at a
  time (``partial_fit``), the weights of the epoch with the best validation AUPRC are kept, and training stops
  after ``mlp_patience`` epochs without a gain or at ``mlp_max_epochs``. Saved as arrays (see
  :mod:`fraud_detection.families.models`).
* ``blend``: a logistic regression over the parts' log-odds, fitted on the validation window (three numbers
  for two parts, so it cannot memorise the window it is then judged on).
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass, field

import numpy as np

from fraud_detection import train
from fraud_detection.families import BLEND, MLP, XGBOOST
from fraud_detection.families.models import BlendModel, FamilyModel, MLPModel, XGBoostModel

log = logging.getLogger(__name__)


@dataclass
class FamilyFit:
    """A trained candidate and what was decided on the validation window."""

    family: str
    model: FamilyModel
    threshold: float
    validation_scores: np.ndarray
    seconds: float
    details: dict[str, float] = field(default_factory=dict)
    """Family-specific numbers worth logging (rounds, epochs, blend weights)."""


def fit_family(
    family: str,
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    params: train.TrainParams,
    sample_weight: np.ndarray | None = None,
) -> FamilyFit:
    """Train one family (``xgboost`` or ``mlp``) with the run's knobs.

    ``sample_weight`` (per training row) makes up for sampled legitimate rows (weight ``1/share``, see
    :mod:`fraud_detection.sampling`); the fraud weight and its correction then count legitimate rows by weight.
    """
    if family == XGBOOST:
        return fit_xgboost(x_train, y_train, x_valid, y_valid, params, sample_weight)
    if family == MLP:
        return fit_mlp(x_train, y_train, x_valid, y_valid, params, sample_weight)
    raise ValueError(f"unknown model family {family!r}: expected one of {XGBOOST}, {MLP}")


def fit_xgboost(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    params: train.TrainParams,
    sample_weight: np.ndarray | None = None,
) -> FamilyFit:
    """XGBoost with early stopping on validation AUPRC (see :func:`fraud_detection.train.train_booster`)."""
    return xgboost_fit(train.train_booster(x_train, y_train, x_valid, y_valid, params, sample_weight=sample_weight))


def xgboost_fit(result: train.TrainResult) -> FamilyFit:
    """A trained booster (from :func:`fraud_detection.train.train_booster` or the Dask engine's
    ``xgboost.dask`` training) as the bake-off's XGBoost candidate."""
    return FamilyFit(
        family=XGBOOST,
        model=XGBoostModel(result.booster),
        threshold=result.threshold,
        validation_scores=result.validation_scores,
        seconds=result.seconds,
        details={"best_iteration": float(result.best_iteration), "scale_pos_weight": result.scale_pos_weight},
    )


def fit_mlp(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    params: train.TrainParams,
    sample_weight: np.ndarray | None = None,
) -> FamilyFit:
    """scikit-learn's MLP, one epoch at a time, keeping the epoch with the best validation AUPRC."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import average_precision_score
    from sklearn.neural_network import MLPClassifier

    if int(y_valid.sum()) == 0:
        raise ValueError("validation window has no fraud rows: early stopping and the threshold need some")
    started = time.perf_counter()
    weight = params.scale_pos_weight or train.auto_weight(y_train, sample_weight)
    if sample_weight is None:
        mean = x_train.mean(axis=0, dtype=np.float64)
        scale = x_train.std(axis=0, dtype=np.float64)
    else:  # the standardisation of the whole window the weighted sample stands for
        mean = np.average(x_train.astype(np.float64), axis=0, weights=sample_weight)
        scale = np.sqrt(np.average((x_train - mean) ** 2, axis=0, weights=sample_weight))
    scale[scale == 0] = 1.0
    z_train = ((x_train - mean) / scale).astype(np.float32)
    z_valid = ((x_valid - mean) / scale).astype(np.float32)
    rows, row_weights = train.weighted_sample(y_valid, params.seed, train.EARLY_STOPPING_MAX_ROWS)
    row_weight = np.where(y_train == 1, weight, 1.0)
    if sample_weight is not None:
        row_weight = row_weight * sample_weight
    network = MLPClassifier(
        hidden_layer_sizes=tuple(params.mlp_hidden_units),
        alpha=params.mlp_alpha,
        batch_size=params.mlp_batch_size,
        learning_rate_init=params.mlp_learning_rate,
        random_state=params.seed,
    )
    best_score, best_epoch, best = -1.0, 0, None
    epoch = 0
    for epoch in range(1, params.mlp_max_epochs + 1):
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", ConvergenceWarning)
            network.partial_fit(z_train, y_train, classes=np.array([0, 1]), sample_weight=row_weight)
        score = float(
            average_precision_score(
                y_valid[rows], network.predict_proba(z_valid[rows])[:, 1], sample_weight=row_weights
            )
        )
        if score > best_score:
            best_score, best_epoch = score, epoch
            best = ([w.copy() for w in network.coefs_], [b.copy() for b in network.intercepts_])
        if epoch % 5 == 0:
            log.info("mlp epoch %d: validation AUPRC %.4f (best %.4f at %d)", epoch, score, best_score, best_epoch)
        if epoch - best_epoch >= params.mlp_patience:
            break
    assert best is not None
    weights, biases = best
    biases[-1] = biases[-1] - math.log(weight)
    model = MLPModel(mean, scale, weights, biases)
    valid_scores = model.predict_proba(x_valid)
    threshold = train.choose_threshold(y_valid, valid_scores, params.threshold_beta)
    seconds = time.perf_counter() - started
    log.info("mlp: %d epochs (best %d) in %.1fs; threshold %.4f", epoch, best_epoch, seconds, threshold)
    return FamilyFit(
        family=MLP,
        model=model,
        threshold=threshold,
        validation_scores=valid_scores,
        seconds=seconds,
        details={"epochs": float(epoch), "best_epoch": float(best_epoch), "scale_pos_weight": weight},
    )


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
    threshold = train.choose_threshold(y_valid, valid_scores, beta)
    return FamilyFit(
        family=BLEND,
        model=model,
        threshold=threshold,
        validation_scores=valid_scores,
        seconds=time.perf_counter() - started,
        details={f"weight_{name}": w for name, w in weights.items()},
    )
