"""Fitting the MLP family: scikit-learn's ``MLPClassifier`` (ReLU, Adam) on standardised features.

Fraud rows get the same weight as in XGBoost (``sqrt(negatives/positives)`` unless ``scale_pos_weight`` is set);
the output unit's bias is then moved by ``-log(weight)``, which undoes the weighting's shift of the odds. One
epoch at a time (``partial_fit``), the weights of the epoch with the best validation AUPRC are kept, and training
stops after ``mlp_patience`` epochs without a gain or at ``mlp_max_epochs``. Saved as arrays (see
:mod:`fraud_detection.families.mlp`). The tuner searches :data:`SEARCH_SPACE` (docs/tuning.md).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Mapping

import numpy as np

from fraud_detection import boosting
from fraud_detection.families import MLP
from fraud_detection.families.fit.base import FamilyFit, FitData
from fraud_detection.families.mlp import MLPModel
from fraud_detection.metrics import Detail, choose_threshold
from fraud_detection.tuning.space import Parameter, SearchSpace, Tunable, Value

log = logging.getLogger(__name__)


def fit(data: FitData, params: boosting.TrainParams, report: Callable[[int, float], None] | None = None) -> FamilyFit:
    """scikit-learn's MLP, one epoch at a time, keeping the epoch with the best validation AUPRC;
    ``report(epoch, auprc)`` hears each epoch's validation AUPRC."""
    import warnings

    from sklearn.exceptions import ConvergenceWarning
    from sklearn.metrics import average_precision_score
    from sklearn.neural_network import MLPClassifier

    x_train, y_train, x_valid, y_valid = data.x_train, data.y_train, data.x_valid, data.y_valid
    sample_weight = data.sample_weight
    if int(y_valid.sum()) == 0:
        raise ValueError("validation window has no fraud rows: early stopping and the threshold need some")
    started = time.perf_counter()
    weight = params.scale_pos_weight or boosting.auto_weight(y_train, sample_weight)
    if sample_weight is None:
        mean = x_train.mean(axis=0, dtype=np.float64)
        scale = x_train.std(axis=0, dtype=np.float64)
    else:  # the standardisation of the whole window the weighted sample stands for
        mean = np.average(x_train.astype(np.float64), axis=0, weights=sample_weight)
        scale = np.sqrt(np.average((x_train - mean) ** 2, axis=0, weights=sample_weight))
    scale[scale == 0] = 1.0
    z_train = ((x_train - mean) / scale).astype(np.float32)
    z_valid = ((x_valid - mean) / scale).astype(np.float32)
    rows, row_weights = boosting.weighted_sample(y_valid, params.seed, boosting.EARLY_STOPPING_MAX_ROWS)
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
        if report is not None:
            report(epoch, score)
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
    threshold = choose_threshold(y_valid, valid_scores, params.threshold_beta)
    seconds = time.perf_counter() - started
    log.info("mlp: %d epochs (best %d) in %.1fs; threshold %.4f", epoch, best_epoch, seconds, threshold)
    return FamilyFit(
        family=MLP,
        model=model,
        threshold=threshold,
        validation_scores=valid_scores,
        seconds=seconds,
        details={
            Detail.EPOCHS.value: float(epoch),
            Detail.BEST_EPOCH.value: float(best_epoch),
            Detail.SCALE_POS_WEIGHT.value: weight,
        },
    )


SEARCH_SPACE = SearchSpace(
    family=MLP,
    parameters=(
        Parameter(name="mlp_layers", kind="int", low=1, high=3),
        Parameter(name="mlp_width_1", kind="int", low=8, high=256, log=True),
        Parameter(name="mlp_width_2", kind="int", low=4, high=128, log=True, when={"mlp_layers": (2, 3)}),
        Parameter(name="mlp_width_3", kind="int", low=4, high=64, log=True, when={"mlp_layers": (3,)}),
        Parameter(name="mlp_alpha", kind="float", low=1e-6, high=1e-2, log=True),
        Parameter(name="mlp_learning_rate", kind="float", low=1e-4, high=1e-2, log=True),
        Parameter(name="mlp_batch_size", kind="categorical", choices=(256, 512, 1024)),
    ),
)
"""The MLP's tuned settings: depth, each layer's width (a layer's width applies only when it exists), the L2
penalty, Adam's step size and the minibatch; epochs stay with early stopping."""


def _apply(params: boosting.TrainParams, values: Mapping[str, Value]) -> boosting.TrainParams:
    layers = int(values["mlp_layers"])
    widths = [int(values[f"mlp_width_{i}"]) for i in range(1, layers + 1)]
    rest = {k: v for k, v in values.items() if not k.startswith(("mlp_layers", "mlp_width_"))}
    return params.model_copy(update={"mlp_hidden_units": widths, **rest})


def _current(params: boosting.TrainParams) -> dict[str, Value]:
    widths = {f"mlp_width_{i}": w for i, w in enumerate(params.mlp_hidden_units, start=1)}
    return {
        "mlp_layers": len(params.mlp_hidden_units),
        **widths,
        "mlp_alpha": params.mlp_alpha,
        "mlp_learning_rate": params.mlp_learning_rate,
        "mlp_batch_size": params.mlp_batch_size,
    }


TUNING = Tunable(space=SEARCH_SPACE, apply=_apply, current=_current, fit=fit, warmup_steps=3)
"""How the tuner fits the MLP: the layer widths become ``mlp_hidden_units``; pruning waits 3 epochs."""
