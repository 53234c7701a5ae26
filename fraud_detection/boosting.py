"""XGBoost booster training: one booster on the training window, stopped early and calibrated on validation.

Both engines train boosters by these rules (the Dask engine in :mod:`fraud_detection.engines.dask_boosting`);
the bake-off fits its XGBoost candidate with :func:`train_booster` (:mod:`fraud_detection.families.fit`).
Rules (documented in the README):

* ``tree_method="hist"``; early stopping on validation AUPRC (``aucpr``); the booster is cut at the best
  round.
* Class imbalance: positives are weighted by ``scale_pos_weight`` (default ``sqrt(negatives/positives)``).
  Weighting multiplies the model's odds by that weight, so the saved booster's ``base_score`` is shifted
  back by ``log(weight)``: it outputs a calibrated fraud probability, not an inflated score.
* Decision threshold: the score that maximises F-beta (beta = 1 by default) on the validation PR curve;
  ties go to the higher threshold (fewer alerts for the same F-beta); see :mod:`fraud_detection.metrics`.
"""

from __future__ import annotations

import json
import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb

from fraud_detection.config import TrainKnobs
from fraud_detection.metrics import choose_threshold
from fraud_detection.schema import FEATURES, LABEL, matrix_names

log = logging.getLogger(__name__)


class TrainParams(TrainKnobs):
    """The train knobs (:class:`fraud_detection.config.TrainKnobs`) plus how many threads XGBoost may use."""

    nthread: int = 0
    """0 lets XGBoost use every core; not a pipeline knob (the poison sweep sets 1 per level task)."""
    mlp_alpha: float = 1e-4
    """MLP L2 penalty (scikit-learn's ``alpha``)."""
    mlp_batch_size: int = 512
    """MLP minibatch rows."""
    mlp_learning_rate: float = 1e-3
    """MLP Adam step size."""
    tune_jobs: int = 0
    """Tuning trials run at once (0 = one per core, :func:`fraud_detection.tuning.study.default_jobs`); 1 makes
    a seeded search repeat exactly. Not a pipeline knob."""

    def as_dict(self) -> dict[str, Any]:
        """Plain dict for logging (MLflow params, metadata)."""
        return self.model_dump()


@dataclass
class TrainResult:
    """A trained, calibrated booster and what was decided on the validation set."""

    booster: xgb.Booster
    threshold: float
    best_iteration: int
    scale_pos_weight: float
    seconds: float
    validation_scores: np.ndarray
    """The calibrated booster's probabilities on the whole validation window."""


def features_and_label(frame: pd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The float32 feature matrix in :data:`FEATURES` order and the int label vector of a frame."""
    x = frame.loc[:, list(FEATURES)].to_numpy(dtype=np.float32)
    y = frame[LABEL].to_numpy(dtype=np.int32)
    return x, y


def auto_weight(y: np.ndarray, sample_weight: np.ndarray | None = None) -> float:
    """The default weight of fraud rows: sqrt(negatives / positives), legitimate rows counted by
    ``sample_weight`` when given; both classes must be present."""
    positives = int(y.sum())
    negatives = int(y.size - positives) if sample_weight is None else float(sample_weight[y == 0].sum())
    if positives == 0 or negatives == 0:
        raise ValueError(f"training labels need both classes, got {positives} positive and {negatives} negative")
    return math.sqrt(negatives / positives)


def _shift_base_score(booster: xgb.Booster, log_odds_shift: float) -> xgb.Booster:
    """Return a copy of ``booster`` whose margin is moved by ``log_odds_shift`` (via its base_score)."""
    model = json.loads(bytes(booster.save_raw("json")))
    params = model["learner"]["learner_model_param"]
    base = float(str(params["base_score"]).strip("[]"))
    base = min(max(base, 1e-12), 1 - 1e-12)
    shifted = 1.0 / (1.0 + math.exp(-(math.log(base / (1.0 - base)) + log_odds_shift)))
    params["base_score"] = f"[{shifted:.9E}]"
    out = xgb.Booster()
    out.load_model(bytearray(json.dumps(model).encode()))
    return out


def calibrated_best(booster: xgb.Booster, weight: float) -> tuple[xgb.Booster, int]:
    """The booster cut at early stopping's best round, with its margin moved by ``-log(weight)``, and that round.

    Weighting the fraud rows by ``weight`` shifts the trained log-odds by ``log(weight)``; moving it back makes
    the probabilities calibrated again. Both engines finish their training with this.
    """
    best = int(booster.best_iteration)
    return _shift_base_score(booster[: best + 1], -math.log(weight)), best


class _Progress(xgb.callback.TrainingCallback):
    """Logs validation AUPRC every ``every`` rounds, so long trainings show they are alive."""

    def __init__(self, every: int, total: int) -> None:
        self.every = every
        self.total = total
        self.start = time.perf_counter()

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        if self.every and (epoch + 1) % self.every == 0:
            score = evals_log.get("validation", {}).get("aucpr", [float("nan")])[-1]
            log.info(
                "round %d/%d  validation AUPRC %.4f  %.1fs",
                epoch + 1,
                self.total,
                score,
                time.perf_counter() - self.start,
            )
        return False


EARLY_STOPPING_MAX_ROWS = 100_000
"""Validation rows scored each round for early stopping; larger windows are sampled (:func:`weighted_sample`).
Scoring them costs about 7 % of the boosting time on 3.8M training rows per 100,000 rows scored; at 6.36M rows
200,000, 100,000 and 50,000 chose the same best round (benchmarks/bench_dask.py's data)."""


def keep_frauds_sample(y: np.ndarray, max_rows: int, seed: int) -> np.ndarray:
    """Sorted row indices: every fraud row plus a seeded sample of legitimate rows, ``max_rows`` in all.

    Returns every row when there are no more than ``max_rows``.
    """
    if y.size <= max_rows:
        return np.arange(y.size)
    positives = np.flatnonzero(y == 1)
    negatives = np.flatnonzero(y == 0)
    keep = max(max_rows - positives.size, 1)
    chosen = np.random.default_rng(seed).choice(negatives, size=min(keep, negatives.size), replace=False)
    return np.sort(np.concatenate([positives, chosen]))


def weighted_sample(y: np.ndarray, seed: int, max_rows: int) -> tuple[np.ndarray, np.ndarray]:
    """Sorted rows and weights of a sample that stands for the whole of ``y``'s rows.

    Above ``max_rows`` the sample keeps every fraud row and a seeded share of legitimate rows, each weighted by
    the inverse of that share, so a weighted statistic of the sample (AUPRC, a quantile) is an unbiased
    estimate of the whole set's. At or below it, every row with weight 1.

    Early stopping scores such a sample of the validation window every round (computing AUPRC sorts every
    score each round, which on millions of rows costs as much as the boosting itself); the threshold and every
    reported metric still use the whole window. XGBoost's quantile sketch reads such a sample of the training
    window (:func:`training_matrix`).
    """
    rows = keep_frauds_sample(y, max_rows, seed)
    if rows.size == y.size:
        return rows, np.ones(rows.size, dtype=np.float32)
    negatives_kept = int((y[rows] == 0).sum())
    weights = np.where(y[rows] == 1, 1.0, int((y == 0).sum()) / negatives_kept).astype(np.float32)
    return rows, weights


SKETCH_MAX_ROWS = 400_000
"""Training rows XGBoost's quantile sketch reads to place the histogram's bin edges when the window has more than
twice as many: then the edges come from a weighted sample of this many (:func:`weighted_sample`) and every row
is binned with them. Below twice, sketching a sample costs more than it saves. The standard error of a
quantile's rank estimated from n uniformly drawn rows is at most 0.5/sqrt(n): about a fifth of a bin (1/256)
at 400,000 rows. On the 3.8M-row training window of benchmarks/bench_dask.py this builds the matrix in 6.0 s
instead of 11.1 s; AUPRC moved by less than the training seed moves it (benchmarks/bench_sketch.py)."""


def sketched_rows(n_rows: int, sketch_max_rows: int = SKETCH_MAX_ROWS) -> int:
    """How many of ``n_rows`` training rows the quantile sketch reads: ``sketch_max_rows`` above twice that
    many, otherwise every row."""
    return sketch_max_rows if n_rows > 2 * sketch_max_rows else n_rows


def training_matrix(
    x: np.ndarray, y: np.ndarray, sample_weight: np.ndarray | None, seed: int, sketch_max_rows: int = SKETCH_MAX_ROWS
) -> xgb.QuantileDMatrix:
    """XGBoost's histogram matrix of the training rows. Above twice ``sketch_max_rows`` rows, its bin edges are
    sketched from that many of them (every fraud row, legitimate rows weighted by the inverse of the share kept,
    times ``sample_weight``); otherwise from all of them, as ``xgb.QuantileDMatrix`` does."""
    names = matrix_names(x.shape[1])
    reference = None
    sketched = sketched_rows(y.size, sketch_max_rows)
    if sketched < y.size:
        rows, weights = weighted_sample(y, seed, sketched)
        if sample_weight is not None:
            weights = weights * sample_weight[rows]
        reference = xgb.QuantileDMatrix(x[rows], weight=weights, feature_names=names)
    return xgb.QuantileDMatrix(x, label=y, weight=sample_weight, ref=reference, feature_names=names)


def booster_params(params: TrainParams, weight: float) -> dict[str, Any]:
    """XGBoost's parameters for the run's knobs and the fraud rows' weight (both engines train with them)."""
    return {
        "objective": "binary:logistic",
        "tree_method": "hist",
        "eval_metric": "aucpr",
        "max_depth": params.max_depth,
        "eta": params.learning_rate,
        "subsample": params.subsample,
        "colsample_bytree": params.colsample_bytree,
        "min_child_weight": params.min_child_weight,
        "scale_pos_weight": weight,
        "seed": params.seed,
        "nthread": params.nthread,
    }


def train_booster(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    params: TrainParams | None = None,
    log_every: int = 50,
    sample_weight: np.ndarray | None = None,
    sketch_max_rows: int = SKETCH_MAX_ROWS,
    callbacks: Sequence[xgb.callback.TrainingCallback] = (),
) -> TrainResult:
    """Train with early stopping on validation AUPRC and pick the decision threshold.

    Args:
        x_train, y_train: training features (float32, :data:`FEATURES` order) and 0/1 labels.
        x_valid, y_valid: the validation window, used for early stopping and the threshold.
        params: model knobs (defaults: :class:`TrainParams`).
        log_every: log progress every this many rounds (0 = quiet).
        sample_weight: per training row (negative downsampling's, see :mod:`fraud_detection.sampling`);
            the automatic ``scale_pos_weight`` then counts legitimate rows by weight.
        sketch_max_rows: above twice this many training rows, the histogram's bin edges are sketched from a
            sample of this many (:func:`training_matrix`).
        callbacks: more XGBoost callbacks (the tuner's, which reports progress and prunes).

    Returns:
        The calibrated booster cut at its best round, with its threshold.
    """
    params = params or TrainParams()
    if int(y_valid.sum()) == 0:
        raise ValueError("validation window has no fraud rows: early stopping and the threshold need some")
    weight = params.scale_pos_weight or auto_weight(y_train, sample_weight)
    started = time.perf_counter()
    dtrain = training_matrix(x_train, y_train, sample_weight, params.seed, sketch_max_rows)
    rows, weights = weighted_sample(y_valid, params.seed, EARLY_STOPPING_MAX_ROWS)
    dvalid = xgb.QuantileDMatrix(
        x_valid[rows], label=y_valid[rows], weight=weights, ref=dtrain, feature_names=matrix_names(x_valid.shape[1])
    )
    booster = xgb.train(
        booster_params(params, weight),
        dtrain,
        num_boost_round=params.n_rounds,
        evals=[(dvalid, "validation")],
        early_stopping_rounds=params.early_stopping_rounds,
        verbose_eval=False,
        callbacks=[_Progress(log_every, params.n_rounds), *callbacks],
    )
    del dtrain, dvalid
    result, _ = finish(
        booster, weight, params, started, lambda calibrated: (predict_proba(calibrated, x_valid), y_valid)
    )
    return result


def finish(
    booster: xgb.Booster,
    weight: float,
    params: TrainParams,
    started: float,
    score_validation: Callable[[xgb.Booster], tuple[np.ndarray, np.ndarray]],
    where: str = "",
) -> tuple[TrainResult, np.ndarray]:
    """What both engines do after boosting: cut and calibrate the booster (:func:`calibrated_best`), score the
    whole validation window with it, choose the threshold there, and log.

    Args:
        booster: as early stopping left it; ``weight`` the fraud rows' weight it was trained with.
        started: ``time.perf_counter()`` when training began.
        score_validation: the calibrated booster's probabilities on the validation window, and its labels.
        where: said before the log line (``"dask: "``, with how many rows).

    Returns:
        The result and the validation labels.
    """
    calibrated, best = calibrated_best(booster, weight)
    valid_scores, y_valid = score_validation(calibrated)
    threshold = choose_threshold(y_valid, valid_scores, params.threshold_beta)
    seconds = time.perf_counter() - started
    rounds = booster.num_boosted_rounds()
    log.info("%strained %d rounds (best %d) in %.1fs; threshold %.4f", where, rounds, best + 1, seconds, threshold)
    return TrainResult(calibrated, threshold, best, weight, seconds, valid_scores), y_valid


def predict_proba(booster: Any, x: np.ndarray) -> np.ndarray:
    """Fraud probability for each row of a float32 matrix in :data:`FEATURES` order.

    ``booster`` is an XGBoost booster or a model of any family (:mod:`fraud_detection.families.models`).
    """
    if not isinstance(booster, xgb.Booster):
        return np.asarray(booster.predict_proba(x), dtype=np.float64)
    return np.asarray(booster.inplace_predict(x, validate_features=False), dtype=np.float64)
