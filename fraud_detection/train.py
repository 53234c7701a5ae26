"""XGBoost training, decision threshold and classification metrics.

Training rules (documented in the README):

* ``tree_method="hist"``; early stopping on validation AUPRC (``aucpr``); the booster is cut at the best
  round.
* Class imbalance: positives are weighted by ``scale_pos_weight`` (default ``sqrt(negatives/positives)``).
  Weighting multiplies the model's odds by that weight, so the saved booster's ``base_score`` is shifted
  back by ``log(weight)``: it outputs a calibrated fraud probability, not an inflated score.
* Decision threshold: the score that maximises F-beta (beta = 1 by default) on the validation PR curve;
  ties go to the higher threshold (fewer alerts for the same F-beta).
"""

from __future__ import annotations

import json
import logging
import math
import time
from dataclasses import dataclass
from typing import Any

import numpy as np
import pandas as pd
import xgboost as xgb
from sklearn.metrics import confusion_matrix_at_thresholds, roc_curve

from fraud_detection.config import TrainKnobs
from fraud_detection.schema import FEATURES, LABEL

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
    names = list(FEATURES)
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
        x_valid[rows], label=y_valid[rows], weight=weights, ref=dtrain, feature_names=list(FEATURES)
    )
    booster = xgb.train(
        booster_params(params, weight),
        dtrain,
        num_boost_round=params.n_rounds,
        evals=[(dvalid, "validation")],
        early_stopping_rounds=params.early_stopping_rounds,
        verbose_eval=False,
        callbacks=[_Progress(log_every, params.n_rounds)],
    )
    del dtrain, dvalid
    calibrated, best = calibrated_best(booster, weight)
    valid_scores = predict_proba(calibrated, x_valid)
    threshold = choose_threshold(y_valid, valid_scores, params.threshold_beta)
    seconds = time.perf_counter() - started
    log.info(
        "trained %d rounds (best %d) in %.1fs; threshold %.4f",
        booster.num_boosted_rounds(),
        best + 1,
        seconds,
        threshold,
    )
    return TrainResult(
        booster=calibrated,
        threshold=threshold,
        best_iteration=best,
        scale_pos_weight=weight,
        seconds=seconds,
        validation_scores=valid_scores,
    )


def predict_proba(booster: Any, x: np.ndarray) -> np.ndarray:
    """Fraud probability for each row of a float32 matrix in :data:`FEATURES` order.

    ``booster`` is an XGBoost booster or a model of any family (:mod:`fraud_detection.families.models`).
    """
    if not isinstance(booster, xgb.Booster):
        return np.asarray(booster.predict_proba(x), dtype=np.float64)
    return np.asarray(booster.inplace_predict(x, validate_features=False), dtype=np.float64)


@dataclass(frozen=True)
class RankCurve:
    """The counts of true and false positives at every distinct score of one set of scores, highest first.

    Sorting the scores is what costs on a million-row window; :func:`rank_curve` does it once, and the PR curve,
    AUPRC, ROC AUC, recall at a precision and the F-beta threshold all come from these counts, by the same
    formulas as scikit-learn's ``precision_recall_curve``, ``average_precision_score`` and ``roc_auc_score``
    (tests compare them), which would sort the scores once each.
    """

    tps: np.ndarray
    fps: np.ndarray
    thresholds: np.ndarray

    def precision_recall(self) -> tuple[np.ndarray, np.ndarray]:
        """Precision and recall at each threshold, highest threshold first."""
        flagged = self.tps + self.fps
        precision = np.divide(self.tps, flagged, out=np.zeros(flagged.size), where=flagged != 0)
        recall = self.tps / self.tps[-1] if self.tps[-1] else np.ones(self.tps.size)
        return precision, recall

    def auprc(self) -> float:
        """Average precision: precision at each threshold weighted by the recall it adds."""
        precision, recall = self.precision_recall()
        return float(np.sum(np.diff(recall, prepend=0.0) * precision))

    def roc_auc(self) -> float:
        """Area under the ROC curve (trapezoids from (0, 0))."""
        fpr = np.concatenate([[0.0], self.fps / self.fps[-1]])
        tpr = np.concatenate([[0.0], self.tps / self.tps[-1]])
        return float(np.trapezoid(tpr, fpr))

    def recall_at_precision(self, min_precision: float) -> float:
        """The highest recall reachable with precision >= ``min_precision`` (0 if never reached)."""
        precision, recall = self.precision_recall()
        reachable = recall[precision >= min_precision]
        return float(reachable.max()) if reachable.size else 0.0

    def best_threshold(self, beta: float = 1.0) -> float:
        """The threshold that maximises F-beta; ties go to the higher threshold."""
        precision, recall = self.precision_recall()
        b2 = beta * beta
        with np.errstate(divide="ignore", invalid="ignore"):
            fbeta = np.where(precision + recall > 0, (1 + b2) * precision * recall / (b2 * precision + recall), 0.0)
        return float(self.thresholds[np.flatnonzero(fbeta == fbeta.max())[0]])


def rank_curve(y: np.ndarray, scores: np.ndarray) -> RankCurve:
    """The :class:`RankCurve` of scores against 0/1 labels (one sort, scikit-learn's)."""
    _, fps, _, tps, thresholds = confusion_matrix_at_thresholds(y, scores)
    return RankCurve(np.asarray(tps, dtype=np.float64), np.asarray(fps, dtype=np.float64), np.asarray(thresholds))


def choose_threshold(y: np.ndarray, scores: np.ndarray, beta: float = 1.0) -> float:
    """The score threshold that maximises F-beta on a PR curve; ties go to the higher threshold."""
    if int(y.sum()) == 0:
        raise ValueError("cannot choose a threshold without positive labels")
    return rank_curve(y, scores).best_threshold(beta)


def recall_at_precision(y: np.ndarray, scores: np.ndarray, min_precision: float = 0.90) -> float:
    """The highest recall reachable with precision >= ``min_precision`` (0 if never reached)."""
    return rank_curve(y, scores).recall_at_precision(min_precision)


def evaluate(y: np.ndarray, scores: np.ndarray, threshold: float) -> dict[str, float]:
    """Classification metrics of scores against labels at a decision threshold.

    Returns AUPRC (primary), ROC AUC, precision / recall / F1 at the threshold, recall at precision 0.90,
    and the confusion counts. The rank metrics share one sort of the scores (:class:`RankCurve`).
    """
    y = np.asarray(y).astype(np.int32)
    if y.size == 0:
        raise ValueError("cannot evaluate on an empty set")
    flagged = scores >= threshold
    tp = int(np.sum(flagged & (y == 1)))
    fp = int(np.sum(flagged & (y == 0)))
    fn = int(np.sum(~flagged & (y == 1)))
    tn = int(np.sum(~flagged & (y == 0)))
    precision = tp / (tp + fp) if tp + fp else 0.0
    recall = tp / (tp + fn) if tp + fn else 0.0
    f1 = 2 * precision * recall / (precision + recall) if precision + recall else 0.0
    curve = rank_curve(y, scores) if 0 < y.sum() < y.size else None
    return {
        "auprc": curve.auprc() if curve else float("nan"),
        "roc_auc": curve.roc_auc() if curve else float("nan"),
        "precision": precision,
        "recall": recall,
        "f1": f1,
        "recall_at_precision_90": curve.recall_at_precision(0.90) if curve else float("nan"),
        "threshold": float(threshold),
        "tp": float(tp),
        "fp": float(fp),
        "fn": float(fn),
        "tn": float(tn),
    }


def roc_points(
    y: np.ndarray, scores: np.ndarray, max_points: int = 100
) -> tuple[list[float], list[float], list[float]]:
    """ROC curve (fpr, tpr, thresholds) reduced to its corners, at most ``max_points``, for KFP's UI."""
    fpr, tpr, thresholds = roc_curve(y, scores)
    corner = np.ones(fpr.size, dtype=bool)
    corner[1:-1] = (tpr[1:-1] != tpr[:-2]) | (tpr[1:-1] != tpr[2:])
    keep = np.flatnonzero(corner)
    if keep.size > max_points:
        keep = keep[np.unique(np.linspace(0, keep.size - 1, max_points).astype(int))]
    finite = np.where(np.isfinite(thresholds[keep]), thresholds[keep], 1.0)
    return fpr[keep].tolist(), tpr[keep].tolist(), finite.tolist()


def logistic_baseline(x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray, seed: int = 42) -> np.ndarray:
    """Scores of a standardised logistic regression: the linear baseline the booster must clearly beat."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    model.fit(x_train, y_train)
    return np.asarray(model.predict_proba(x_eval)[:, 1], dtype=np.float64)
