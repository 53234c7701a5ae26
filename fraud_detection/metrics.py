"""Classification metrics of fraud scores, and the names every step records them under.

The computations: one sort of the scores (:class:`RankCurve`) gives the PR curve, AUPRC, ROC AUC, recall at a
precision and the F-beta decision threshold; :func:`evaluate` adds precision, recall and F1 at a threshold and
the confusion counts; :func:`roc_points` reduces the ROC curve for KFP's UI.

The names: a metric is recorded under a key built here and read back through the same definition, never
through a string spelled again elsewhere (MLflow, KFP metadata and the model directory keep these exact keys):

* :class:`Metric`: what :func:`evaluate` measures on one window (``auprc``, ``roc_auc``, ``tp``, ...).
* :func:`on` prefixes a window: ``on(TEST, Metric.AUPRC)`` is ``test_auprc``.
* :func:`of` prefixes a bake-off candidate: ``of("mlp", on(VALIDATION, Metric.AUPRC))`` is
  ``mlp_validation_auprc``, ``of("xgboost", Detail.BEST_ITERATION)`` is ``xgboost_best_iteration``.
* :class:`Detail`: a family's training numbers (rounds, epochs, fraud weight); :func:`blend_weight` names a
  blend part's weight.
* :class:`Run`: the select step's numbers about the run rather than one candidate (baseline, oracle, fraud rate,
  card precision@k).

Reading a key costs only this module and numpy (scikit-learn is imported where a curve is computed).
"""

from __future__ import annotations

from dataclasses import dataclass
from enum import StrEnum

import numpy as np

VALIDATION = "validation"
"""The window that trains early stopping, picks thresholds and decides the bake-off."""
TEST = "test"
"""The window that is only reported (and on which promotion compares champion and candidate)."""


class Metric(StrEnum):
    """What :func:`evaluate` measures on one window."""

    AUPRC = "auprc"
    ROC_AUC = "roc_auc"
    PRECISION = "precision"
    RECALL = "recall"
    F1 = "f1"
    RECALL_AT_PRECISION_90 = "recall_at_precision_90"
    THRESHOLD = "threshold"
    TP = "tp"
    FP = "fp"
    FN = "fn"
    TN = "tn"


RANK_SUMMARY: tuple[Metric, ...] = (Metric.AUPRC, Metric.ROC_AUC, Metric.F1)
"""The validation metrics a candidate's model directory records."""
CONFUSION: tuple[Metric, ...] = (Metric.TN, Metric.FP, Metric.FN, Metric.TP)
"""The confusion counts, in scikit-learn's ``confusion_matrix`` order (row-major [[tn, fp], [fn, tp]])."""


class Detail(StrEnum):
    """A family's training numbers, recorded beside its metrics."""

    TRAIN_SECONDS = "train_seconds"
    BEST_ITERATION = "best_iteration"
    """XGBoost: the best round, counted from 0 (trees = best_iteration + 1)."""
    SCALE_POS_WEIGHT = "scale_pos_weight"
    EPOCHS = "epochs"
    BEST_EPOCH = "best_epoch"
    THRESHOLD = "threshold"
    """The decision threshold chosen on validation."""
    TUNE_TRIALS = "tune_trials"
    """Tuning trials run (:mod:`fraud_detection.tuning`); absent when the family was not tuned."""
    TUNE_PRUNED = "tune_pruned"
    TUNE_SECONDS = "tune_seconds"


TUNED_PREFIX = "tuned_"
"""A tuned family's best value of each tuned parameter is recorded as the detail ``tuned_<name>``
(:mod:`fraud_detection.tuning`)."""


class Run(StrEnum):
    """The select step's numbers about the run as a whole."""

    BASELINE_LR_TEST_AUPRC = "baseline_lr_test_auprc"
    """A standardised logistic regression's test AUPRC: the linear baseline."""
    TEST_FRAUD_RATE = "test_fraud_rate"
    ORACLE_TEST_AUPRC = "oracle_test_auprc"
    """Synthetic data only: the test AUPRC of the generator's true probabilities (the best achievable)."""
    AUPRC_VS_ORACLE = "auprc_vs_oracle"
    ROBUST_FRACTION = "robust_fraction"
    """Recorded by promotion on the candidate's run: the share of clean AUPRC kept under the poison sweep."""
    EQUALIZED_ODDS_DIFFERENCE = "equalized_odds_difference"
    """Recorded by promotion on the candidate's run: the fairness step's gate number (absent: not measurable)."""
    TEST_CARD_PRECISION_AT_K = "test_card_precision_at_k"
    """Raw transactions with a card key only: :func:`card_precision_at_k` of the winner on the test window."""
    CARD_PRECISION_K = "card_precision_k"
    """The k that card precision@k was measured at (the ``card_precision_k`` knob)."""


def on(window: str, metric: str) -> str:
    """The key of ``metric`` measured on ``window`` (``test_auprc``)."""
    return f"{window}_{metric}"


def of(family: str, key: str) -> str:
    """The key of one bake-off candidate's ``key`` (``mlp_validation_auprc``, ``xgboost_best_iteration``)."""
    return f"{family}_{key}"


def blend_weight(family: str) -> str:
    """The key of a blend part's weight (``weight_xgboost``)."""
    return f"weight_{family}"


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
    from sklearn.metrics import confusion_matrix_at_thresholds

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
    """Classification metrics of scores against labels at a decision threshold, keyed by :class:`Metric`.

    AUPRC (primary), ROC AUC, precision / recall / F1 at the threshold, recall at precision 0.90, and the
    confusion counts. The rank metrics share one sort of the scores (:class:`RankCurve`).
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
    values = {
        Metric.AUPRC: curve.auprc() if curve else float("nan"),
        Metric.ROC_AUC: curve.roc_auc() if curve else float("nan"),
        Metric.PRECISION: precision,
        Metric.RECALL: recall,
        Metric.F1: f1,
        Metric.RECALL_AT_PRECISION_90: curve.recall_at_precision(0.90) if curve else float("nan"),
        Metric.THRESHOLD: float(threshold),
        Metric.TP: float(tp),
        Metric.FP: float(fp),
        Metric.FN: float(fn),
        Metric.TN: float(tn),
    }
    return {key.value: value for key, value in values.items()}


def on_window(window: str, measured: dict[str, float], only: tuple[Metric, ...] | None = None) -> dict[str, float]:
    """``measured`` (from :func:`evaluate`) keyed for ``window`` (``auprc`` -> ``test_auprc``); ``only`` keeps
    those metrics."""
    return {on(window, k): v for k, v in measured.items() if only is None or k in only}


def roc_points(
    y: np.ndarray, scores: np.ndarray, max_points: int = 100
) -> tuple[list[float], list[float], list[float]]:
    """ROC curve (fpr, tpr, thresholds) reduced to its corners, at most ``max_points``, for KFP's UI."""
    from sklearn.metrics import roc_curve

    fpr, tpr, thresholds = roc_curve(y, scores)
    corner = np.ones(fpr.size, dtype=bool)
    corner[1:-1] = (tpr[1:-1] != tpr[:-2]) | (tpr[1:-1] != tpr[2:])
    keep = np.flatnonzero(corner)
    if keep.size > max_points:
        keep = keep[np.unique(np.linspace(0, keep.size - 1, max_points).astype(int))]
    finite = np.where(np.isfinite(thresholds[keep]), thresholds[keep], 1.0)
    return fpr[keep].tolist(), tpr[keep].tolist(), finite.tolist()


DAY_SECONDS = 86_400.0
"""A day of :func:`card_precision_at_k`: event times are cut into days of this many seconds from 0."""


def card_precision_at_k(card: np.ndarray, time: np.ndarray, y: np.ndarray, scores: np.ndarray, k: int = 100) -> float:
    """Card precision@k per day, averaged over the days (the Fraud Detection Handbook's measure).

    An analyst reviews ``k`` cards a day. For each day that has transactions, the cards are ranked by their
    highest score that day; of the top ``k``, the share that had at least one fraud that day (always divided
    by ``k``, even on a day with fewer cards) is that day's precision. Ties in score keep the cards' first
    appearance order.

    Args:
        card: each transaction's card key; ``time`` its event time in seconds (day ``floor(time / 86400)``).
        y: 0/1 labels; ``scores`` the model's fraud scores.
        k: cards reviewed per day, at least 1.
    """
    if k < 1:
        raise ValueError(f"k must be at least 1, got {k}")
    card, time, y, scores = (np.asarray(a) for a in (card, time, y, scores))
    if not card.size == time.size == y.size == scores.size:
        raise ValueError("card, time, y and scores must have one value per transaction")
    if card.size == 0:
        raise ValueError("cannot measure card precision on an empty set")
    _, card_code = np.unique(card, return_inverse=True)
    day = np.floor(time / DAY_SECONDS).astype(np.int64)
    day_cards, group = np.unique(np.stack([day, card_code.astype(np.int64)], axis=1), axis=0, return_inverse=True)
    group = group.ravel()
    top_score = np.full(len(day_cards), -np.inf)
    np.maximum.at(top_score, group, scores.astype(np.float64))
    had_fraud = np.zeros(len(day_cards), dtype=np.int64)
    np.maximum.at(had_fraud, group, y.astype(np.int64))
    first_seen = np.full(len(day_cards), card.size)
    np.minimum.at(first_seen, group, np.arange(card.size))
    order = np.lexsort((first_seen, -top_score, day_cards[:, 0]))
    days = day_cards[order, 0]
    rank = np.arange(days.size) - np.searchsorted(days, days, side="left")
    per_day = np.bincount(np.searchsorted(np.unique(days), days), weights=had_fraud[order] * (rank < k))
    return float(np.mean(per_day / k))
