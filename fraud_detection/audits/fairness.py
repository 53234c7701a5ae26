"""Fairness by a sensitive attribute (Fairlearn), beside the explanations of the model's scores.

On the test window, Fairlearn's ``MetricFrame`` computes per group of the sensitive attribute: row and fraud
counts, recall (share of frauds caught), false-positive rate (share of legitimate customers flagged),
precision, selection rate (share flagged) and AUPRC; plus the demographic-parity difference (largest gap in
selection rate) and the equalised-odds difference (largest gap in recall or FPR). A group with too few test
frauds is left out of the recall comparison (:data:`MIN_GROUP_FRAUDS`), and the result says in words which
groups were compared (:func:`recall_comparison`), so that a difference measured on FPR alone never reads as a
clean bill. The attribute is a parameter and is never a model feature: it is read from the test frame only to
group rows. When the data has no such column (the public credit-card data set has none), the audit says so in
its result and report and computes no fairness numbers; it never invents an attribute.

:func:`run_fairness` returns a :class:`FairnessResult` with the explanations of
:mod:`fraud_detection.audits.explain`; :mod:`fraud_detection.reports.fairness` renders it.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from typing import Any

import numpy as np
import pandas as pd

from fraud_detection.audits.explain import ExplainParams, Explanation, explain, explainer_of
from fraud_detection.audits.jsonable import json_safe
from fraud_detection.schema import FEATURES, LABEL, DataValidationError

GROUP_METRICS: tuple[str, ...] = ("count", "frauds", "recall", "fpr", "precision", "selection_rate", "auprc")
"""The per-group numbers, in report order."""
MIN_GROUP_FRAUDS = 10
"""Groups with fewer test frauds are reported but left out of the recall comparison: with n frauds one fraud
caught or missed moves a group's recall by 1/n, so below about ten a recall gap is mostly chance (a group
with one test fraud has recall 0 or 1). Their false-positive rates, measured on legitimate rows, still count."""


@dataclass(frozen=True)
class GroupFairness:
    """Per-group metrics of thresholded scores and the disparities between groups."""

    by_group: dict[str, dict[str, float]]
    """Group -> {metric in :data:`GROUP_METRICS`: value}."""
    overall: dict[str, float]
    """The same metrics on all rows."""
    demographic_parity_difference: float
    """Largest gap in selection rate between groups."""
    equalized_odds_difference: float
    """The larger of ``recall_gap`` and ``fpr_gap``; NaN when neither can be measured."""
    recall_gap: float
    """Largest recall gap between groups with at least ``min_group_frauds`` frauds (NaN with fewer than two)."""
    fpr_gap: float
    """Largest false-positive-rate gap between all groups (NaN with fewer than two)."""
    min_group_frauds: int
    groups_below_support: list[str]
    """Groups left out of the recall gap (fewer than ``min_group_frauds`` frauds)."""

    @property
    def recall_comparison(self) -> str:
        """Which groups' recall the equalised-odds difference compares, in words ("" when every group's)."""
        return recall_comparison(self.by_group, self.min_group_frauds)

    def to_dict(self) -> dict[str, Any]:
        """A plain-JSON dict (NaN as None), with :attr:`recall_comparison`."""
        return dict(json_safe({**asdict(self), "recall_comparison": self.recall_comparison}))


def recall_comparison(by_group: Mapping[str, Mapping[str, Any]], min_group_frauds: int = MIN_GROUP_FRAUDS) -> str:
    """Which groups the recall gap compared, in words; "" when it compared every group.

    Groups with fewer than ``min_group_frauds`` test frauds are left out. With fewer than two groups left,
    recall is not compared at all and the equalised-odds difference is the FPR gap alone: the sentence says
    so, since a small difference would otherwise read as equal treatment of frauds too.

    Args:
        by_group: group -> its metrics, at least ``frauds`` (as :attr:`GroupFairness.by_group`, or its JSON).
    """
    below = sorted(g for g, v in by_group.items() if float(v.get("frauds") or 0) < min_group_frauds)
    if not below:
        return ""
    compared = sorted(set(by_group) - set(below))
    too_few = f"fewer than {min_group_frauds} test frauds"
    if len(compared) >= 2:
        return f"recall compared for {', '.join(compared)} only: {', '.join(below)} had {too_few}"
    fpr_only = "so the equalised-odds difference is the false-positive-rate gap alone"
    if compared:
        return f"recall not compared: every group but {compared[0]} had {too_few}, {fpr_only}"
    return f"recall not compared: every group had {too_few}, {fpr_only}"


def _auprc(y_true: Any, y_pred: Any, scores: Any) -> float:
    from sklearn.metrics import average_precision_score

    y = np.asarray(y_true)
    if y.size == 0 or y.min() == y.max():
        return float("nan")
    return float(average_precision_score(y, np.asarray(scores)))


def _frauds(y_true: Any, y_pred: Any) -> float:
    return float(np.sum(np.asarray(y_true) == 1))


def group_fairness(
    y_true: np.ndarray,
    scores: np.ndarray,
    threshold: float,
    groups: pd.Series | np.ndarray,
    min_group_frauds: int = MIN_GROUP_FRAUDS,
) -> GroupFairness:
    """Per-group metrics and disparities of thresholded scores, with Fairlearn's ``MetricFrame``.

    Args:
        y_true: 0/1 labels.
        scores: fraud probabilities.
        threshold: flag when ``score >= threshold``.
        groups: the sensitive attribute of each row (never a model feature).
        min_group_frauds: groups with fewer frauds are left out of the recall gap (see
            :data:`MIN_GROUP_FRAUDS`).

    Raises:
        ValueError: labels, scores and groups differ in length.
    """
    from fairlearn.metrics import (
        MetricFrame,
        count,
        demographic_parity_difference,
        false_positive_rate,
        selection_rate,
    )
    from sklearn.metrics import precision_score, recall_score

    y = np.asarray(y_true).astype(np.int32)
    s = np.asarray(scores, dtype=np.float64)
    g = np.asarray(groups).astype(str)
    if not (y.size == s.size == g.size):
        raise ValueError(f"labels ({y.size}), scores ({s.size}) and groups ({g.size}) differ in length")
    flags = (s >= threshold).astype(np.int32)
    frame = MetricFrame(
        metrics={
            "count": count,
            "frauds": _frauds,
            "recall": lambda a, b: recall_score(a, b, zero_division=np.nan),
            "fpr": false_positive_rate,
            "precision": lambda a, b: precision_score(a, b, zero_division=np.nan),
            "selection_rate": selection_rate,
            "auprc": _auprc,
        },
        y_true=y,
        y_pred=flags,
        sensitive_features=pd.Series(g, name="group"),
        sample_params={"auprc": {"scores": s}},
    )
    by_group = {
        str(name): {m: float(frame.by_group.loc[name, m]) for m in GROUP_METRICS} for name in frame.by_group.index
    }
    overall = {m: float(frame.overall[m]) for m in GROUP_METRICS}
    recalls = [v["recall"] for v in by_group.values() if v["frauds"] >= min_group_frauds and np.isfinite(v["recall"])]
    fprs = [v["fpr"] for v in by_group.values() if np.isfinite(v["fpr"])]
    recall_gap = float(max(recalls) - min(recalls)) if len(recalls) >= 2 else float("nan")
    fpr_gap = float(max(fprs) - min(fprs)) if len(fprs) >= 2 else float("nan")
    gaps = [gap for gap in (recall_gap, fpr_gap) if np.isfinite(gap)]
    return GroupFairness(
        by_group=by_group,
        overall=overall,
        demographic_parity_difference=float(demographic_parity_difference(y, flags, sensitive_features=g)),
        equalized_odds_difference=float(max(gaps)) if gaps else float("nan"),
        recall_gap=recall_gap,
        fpr_gap=fpr_gap,
        min_group_frauds=int(min_group_frauds),
        groups_below_support=[k for k, v in by_group.items() if v["frauds"] < min_group_frauds],
    )


@dataclass(frozen=True)
class FairnessResult:
    """The fairness + explanation audit of one model on the test window."""

    sensitive_column: str
    """The audited attribute ("" when none was configured)."""
    note: str
    """One sentence for people: what was audited, or why fairness was not."""
    fairness: GroupFairness | None
    """None when the data has no usable sensitive attribute (nothing is invented)."""
    shap: Explanation
    threshold: float
    """The model's decision threshold the groups were compared at."""
    test_rows: int
    explain_params: ExplainParams
    seconds: float
    explainer: str = "exact TreeSHAP values from XGBoost"
    """How the contributions were computed (the model's family decides; see :func:`explainer_of`)."""

    @property
    def fairness_available(self) -> bool:
        """True when group fairness was measured."""
        return self.fairness is not None

    @property
    def equalized_odds_difference(self) -> float | None:
        """The fairness gate's number; None when not measurable (no attribute, or fewer than two groups)."""
        if self.fairness is None or not np.isfinite(self.fairness.equalized_odds_difference):
            return None
        return self.fairness.equalized_odds_difference

    def metrics(self) -> dict[str, float]:
        """Flat numbers for KFP ``Metrics`` and MLflow: disparities, per-group recall/FPR, top SHAP importances.

        Non-finite values are left out.
        """
        metrics: dict[str, float] = {"fairness_available": 1.0 if self.fairness else 0.0}
        if self.fairness:
            f = self.fairness
            metrics["demographic_parity_difference"] = float(f.demographic_parity_difference)
            metrics["equalized_odds_difference"] = float(f.equalized_odds_difference)
            metrics["recall_gap"] = float(f.recall_gap)
            metrics["fpr_gap"] = float(f.fpr_gap)
            metrics["groups_below_support"] = float(len(f.groups_below_support))
            metrics["min_group_frauds"] = float(f.min_group_frauds)
            for group, values in f.by_group.items():
                tag = "".join(ch if ch.isalnum() else "_" for ch in group)
                for m in ("recall", "fpr", "selection_rate", "auprc"):
                    metrics[f"{m}_{tag}"] = float(values[m])
        for feature, value in list(self.shap.importance.items())[:5]:
            metrics[f"shap_{feature}"] = float(value)
        return {k: v for k, v in metrics.items() if np.isfinite(v)}

    def to_dict(self) -> dict[str, Any]:
        """The ``fairness_summary.json`` content (without its ``paths``), as plain JSON."""
        return dict(
            json_safe(
                {
                    "sensitive_column": self.sensitive_column,
                    "fairness_available": self.fairness_available,
                    "fairness_note": self.note,
                    "fairness": None if self.fairness is None else self.fairness.to_dict(),
                    "shap": self.shap.to_dict(),
                    "threshold": self.threshold,
                    "test_rows": self.test_rows,
                    "explain_params": asdict(self.explain_params),
                    "explainer": self.explainer,
                    "metrics": self.metrics(),
                    "seconds": self.seconds,
                }
            )
        )


def _sensitive_problem(frame: pd.DataFrame, column: str, features: Sequence[str] = FEATURES) -> str | None:
    if not column:
        return "no sensitive attribute was configured, so no fairness metrics were computed"
    if column in features:
        raise DataValidationError(f"sensitive column {column!r} is a model feature; fairness needs a separate column")
    if column not in frame.columns:
        return (
            f"the data has no column {column!r}, so no fairness metrics were computed; the audit does not invent "
            "a sensitive attribute (the public credit-card data set has none; add a real one to audit fairness)"
        )
    if frame[column].isna().all():
        return f"column {column!r} is empty, so no fairness metrics were computed"
    return None


def run_fairness(
    test: pd.DataFrame,
    booster: Any,
    threshold: float,
    sensitive_column: str,
    params: ExplainParams | None = None,
    feature_names: Sequence[str] = FEATURES,
) -> FairnessResult:
    """The fairness + explanation audit on the test window.

    Args:
        test: the test window with the features, the label and (if available) the sensitive column.
        booster: the candidate model; ``threshold`` its decision threshold.
        sensitive_column: the attribute to audit (never a model feature); "" or absent -> no fairness part.
        params: SHAP sample size and top-k.
        feature_names: the model's input columns, in order (the model directory's ``feature_names``).

    Raises:
        DataValidationError: a feature or the label is missing, or the attribute is a model feature.
        ValueError: the threshold is outside [0, 1].
    """
    from fraud_detection.boosting import predict_proba

    started = time.perf_counter()
    missing = [c for c in (*feature_names, LABEL) if c not in test.columns]
    if missing:
        raise DataValidationError(f"test window is missing column(s) {missing}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within [0, 1], got {threshold}")
    params = params or ExplainParams()
    x = test.loc[:, list(feature_names)].to_numpy(dtype=np.float32)
    y = test[LABEL].to_numpy(dtype=np.int32)
    scores = predict_proba(booster, x)
    note = _sensitive_problem(test, sensitive_column, feature_names)
    fairness = None if note else group_fairness(y, scores, threshold, test[sensitive_column])
    if fairness is not None and fairness.recall_comparison:
        note = f"fairness audited by {sensitive_column!r}; {fairness.recall_comparison}"
    explained = explain(booster, x, y, scores, params, feature_names)
    return FairnessResult(
        sensitive_column=sensitive_column,
        note=note or f"fairness audited by {sensitive_column!r}",
        fairness=fairness,
        shap=explained,
        threshold=float(threshold),
        test_rows=len(test),
        explain_params=params,
        seconds=round(time.perf_counter() - started, 3),
        explainer=explainer_of(booster),
    )


__all__ = [
    "GROUP_METRICS",
    "MIN_GROUP_FRAUDS",
    "FairnessResult",
    "GroupFairness",
    "group_fairness",
    "recall_comparison",
    "run_fairness",
]
