"""Fairness by a sensitive attribute (Fairlearn) and explanations of the model's scores (SHAP values).

Fairness. On the test window, Fairlearn's ``MetricFrame`` computes per group of the sensitive attribute:
row and fraud counts, recall (share of frauds caught), false-positive rate (share of legitimate customers
flagged), precision, selection rate (share flagged) and AUPRC; plus the demographic-parity difference
(largest gap in selection rate) and the equalised-odds difference (largest gap in recall or FPR). The
attribute is a parameter and is never a model feature: it is read from the test frame only to group rows.
When the data has no such column (the public credit-card data set has none), the audit says so in its
result and report and computes no fairness numbers; it never invents an attribute.

Explanations. SHAP values of the booster come from XGBoost's own exact TreeSHAP (``pred_contribs``), in
log-odds units, so they add up to the model's margin for each row. Global importance is the mean absolute
SHAP value per feature on a sample of test rows (all test frauds plus a seeded sample of legitimate rows);
a beeswarm plot shows direction (colour = the feature's value). Local explanations list the largest
contributions for the top-k test transactions by score.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraud_detection import reports, tracking
from fraud_detection.schema import FEATURES, LABEL, DataValidationError

log = logging.getLogger(__name__)

GROUP_METRICS: tuple[str, ...] = ("count", "frauds", "recall", "fpr", "precision", "selection_rate", "auprc")
MIN_GROUP_FRAUDS = 10
"""Groups with fewer test frauds are reported but left out of the recall comparison: with n frauds one fraud
caught or missed moves a group's recall by 1/n, so below about ten a recall gap is mostly chance (a group
with one test fraud has recall 0 or 1). Their false-positive rates, measured on legitimate rows, still count."""


@dataclass(frozen=True)
class ExplainParams:
    """Knobs of the SHAP part."""

    sample_rows: int = 2000
    """Rows for global importance: every test fraud plus legitimate rows up to this total (seeded)."""
    top_k: int = 5
    """Local explanations for the k highest-scored test transactions."""
    top_features: int = 6
    """Contributions listed per local explanation."""
    seed: int = 0

    def __post_init__(self) -> None:
        if self.sample_rows < 10 or self.top_k < 1 or self.top_features < 1:
            raise ValueError(
                f"need sample_rows >= 10, top_k >= 1, top_features >= 1; got {self.sample_rows}, {self.top_k}, "
                f"{self.top_features}"
            )


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
) -> dict[str, Any]:
    """Per-group metrics and disparities of thresholded scores.

    Args:
        y_true: 0/1 labels.
        scores: fraud probabilities.
        threshold: flag when ``score >= threshold``.
        groups: the sensitive attribute of each row (never a model feature).
        min_group_frauds: groups with fewer frauds are left out of the recall gap (see
            :data:`MIN_GROUP_FRAUDS`).

    Returns:
        ``by_group`` ({group: {metric: value}}), ``overall``, ``demographic_parity_difference``, the largest
        gaps in recall (between groups with at least ``min_group_frauds`` frauds) and in FPR (between all
        groups), ``equalized_odds_difference`` (the larger of the two; NaN when neither can be measured),
        and ``groups_below_support``.
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
    return {
        "by_group": by_group,
        "overall": overall,
        "demographic_parity_difference": float(demographic_parity_difference(y, flags, sensitive_features=g)),
        "equalized_odds_difference": float(max(gaps)) if gaps else float("nan"),
        "recall_gap": recall_gap,
        "fpr_gap": fpr_gap,
        "min_group_frauds": int(min_group_frauds),
        "groups_below_support": [k for k, v in by_group.items() if v["frauds"] < min_group_frauds],
    }


def shap_values(booster: Any, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """Exact TreeSHAP values from XGBoost: (contributions of shape (n, 29), bias of shape (n,)), log-odds units."""
    import xgboost as xgb

    contribs = booster.predict(xgb.DMatrix(x, feature_names=list(FEATURES)), pred_contribs=True)
    contribs = np.asarray(contribs, dtype=np.float64)
    return contribs[:, :-1], contribs[:, -1]


def _explain_sample(y: np.ndarray, rows: int, seed: int) -> np.ndarray:
    fraud = np.flatnonzero(y == 1)
    legit = np.flatnonzero(y == 0)
    take = max(rows - fraud.size, 0)
    rng = np.random.default_rng(seed)
    chosen = np.concatenate([fraud[:rows], rng.choice(legit, size=min(take, legit.size), replace=False)])
    return np.sort(chosen)


def _importance_png(features: list[str], importance: np.ndarray, shap: np.ndarray, values: np.ndarray) -> bytes:
    order = np.argsort(importance)[::-1][:12][::-1]
    fig = reports.new_figure(12.0, 5.0)
    bar_ax, swarm_ax = fig.subplots(1, 2)
    bar_ax.barh([features[i] for i in order], importance[order], color="#0969da")
    bar_ax.set_xlabel("mean |SHAP value| (log-odds)")
    bar_ax.set_title("Global importance")
    rng = np.random.default_rng(0)
    for row, i in enumerate(order):
        v = values[:, i]
        lo, hi = np.nanpercentile(v, [5, 95])
        colour = np.clip((v - lo) / (hi - lo), 0, 1) if hi > lo else np.full(v.size, 0.5)
        jitter = rng.uniform(-0.3, 0.3, v.size)
        points = swarm_ax.scatter(shap[:, i], row + jitter, c=colour, cmap="coolwarm", s=5, alpha=0.6, linewidths=0)
    swarm_ax.set_yticks(range(order.size), [features[i] for i in order])
    swarm_ax.axvline(0.0, color="#57606a", linewidth=0.8)
    swarm_ax.set_xlabel("SHAP value (impact on log-odds of fraud)")
    swarm_ax.set_title("Beeswarm (colour: feature value, blue low / red high)")
    fig.colorbar(points, ax=swarm_ax, label="feature value (percentile-scaled)")
    return reports.figure_png(fig)


def _local_png(explanations: list[dict[str, Any]]) -> bytes:
    k = len(explanations)
    fig = reports.new_figure(11.0, 2.2 * k + 0.5)
    axes = np.atleast_1d(fig.subplots(k, 1))
    for ax, item in zip(axes, explanations, strict=True):
        contribs = item["contributions"][::-1]
        names = [f"{c['feature']} = {c['value']:.3g}" for c in contribs]
        shap = [c["shap"] for c in contribs]
        ax.barh(names, shap, color=["#cf222e" if v > 0 else "#0969da" for v in shap])
        ax.axvline(0.0, color="#57606a", linewidth=0.8)
        ax.set_title(
            f"test row {item['row']}: score {item['score']:.3f}, label {item['label']} "
            f"(base {item['base']:.2f} log-odds)",
            fontsize=9,
        )
        ax.tick_params(labelsize=8)
    axes[-1].set_xlabel("SHAP value (log-odds); red pushes towards fraud")
    return reports.figure_png(fig)


def explain(
    booster: Any, x_test: np.ndarray, y_test: np.ndarray, scores: np.ndarray, params: ExplainParams | None = None
) -> dict[str, Any]:
    """Global SHAP importance on a sample and local explanations of the top-k scored test transactions.

    Returns:
        ``importance`` (feature -> mean |SHAP|, sorted), ``local`` (list of explanations), ``sample_rows``
        and the two PNGs as bytes under ``_png`` (dropped from JSON output by the caller).
    """
    params = params or ExplainParams()
    features = list(FEATURES)
    sample = _explain_sample(np.asarray(y_test), params.sample_rows, params.seed)
    shap, _ = shap_values(booster, x_test[sample])
    importance = np.abs(shap).mean(axis=0)
    top = np.argsort(-np.asarray(scores), kind="stable")[: params.top_k]
    local_shap, local_base = shap_values(booster, x_test[top])
    local = []
    for j, row in enumerate(top):
        order = np.argsort(-np.abs(local_shap[j]))[: params.top_features]
        local.append(
            {
                "row": int(row),
                "score": float(scores[row]),
                "label": int(y_test[row]),
                "base": float(local_base[j]),
                "contributions": [
                    {"feature": features[i], "value": float(x_test[row, i]), "shap": float(local_shap[j, i])}
                    for i in order
                ],
            }
        )
    ranked = sorted(zip(features, importance.tolist(), strict=True), key=lambda kv: -kv[1])
    return {
        "importance": dict(ranked),
        "local": local,
        "sample_rows": int(sample.size),
        "_png": {
            "importance": _importance_png(features, importance, shap, x_test[sample]),
            "local": _local_png(local),
        },
    }


def _sensitive_problem(frame: pd.DataFrame, column: str) -> str | None:
    if not column:
        return "no sensitive attribute was configured, so no fairness metrics were computed"
    if column in FEATURES:
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
    out_dir: Path | str,
    params: ExplainParams | None = None,
) -> dict[str, Any]:
    """The fairness + explanation audit on the test window; writes the HTML report, PNGs and JSON summary.

    Args:
        test: the test window with the features, the label and (if available) the sensitive column.
        booster: the candidate model; ``threshold`` its decision threshold.
        sensitive_column: the attribute to audit (never a model feature); "" or absent -> no fairness part.
        out_dir: where ``fairness_report.html``, ``shap_importance.png``, ``shap_local.png`` and
            ``fairness_summary.json`` go.
        params: SHAP sample size and top-k.

    Returns:
        JSON-serialisable summary: ``fairness_available`` (bool), ``fairness_note``, ``fairness`` (or None),
        ``shap``, ``metrics`` (flat numbers for KFP Metrics), ``seconds`` and ``paths``.
    """
    from fraud_detection.train import predict_proba

    started = time.perf_counter()
    missing = [c for c in (*FEATURES, LABEL) if c not in test.columns]
    if missing:
        raise DataValidationError(f"test window is missing column(s) {missing}")
    if not 0.0 <= threshold <= 1.0:
        raise ValueError(f"threshold must be within [0, 1], got {threshold}")
    params = params or ExplainParams()
    x = test.loc[:, list(FEATURES)].to_numpy(dtype=np.float32)
    y = test[LABEL].to_numpy(dtype=np.int32)
    scores = predict_proba(booster, x)
    note = _sensitive_problem(test, sensitive_column)
    fairness = None if note else group_fairness(y, scores, threshold, test[sensitive_column])
    if fairness is not None and fairness["groups_below_support"]:
        note = (
            f"fairness audited by {sensitive_column!r}; recall of {', '.join(fairness['groups_below_support'])} "
            f"not compared (fewer than {fairness['min_group_frauds']} test frauds)"
        )
    explained = explain(booster, x, y, scores, params)
    pngs = explained.pop("_png")

    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    (out / "shap_importance.png").write_bytes(pngs["importance"])
    (out / "shap_local.png").write_bytes(pngs["local"])
    metrics = kfp_metrics(fairness, explained)
    html = _report_html(sensitive_column, note, fairness, explained, pngs, threshold, len(test))
    (out / "fairness_report.html").write_text(html, encoding="utf-8")
    summary: dict[str, Any] = {
        "sensitive_column": sensitive_column,
        "fairness_available": fairness is not None,
        "fairness_note": note or f"fairness audited by {sensitive_column!r}",
        "fairness": fairness,
        "shap": explained,
        "threshold": float(threshold),
        "test_rows": len(test),
        "explain_params": asdict(params),
        "metrics": metrics,
        "seconds": round(time.perf_counter() - started, 3),
        "paths": {
            "html": str(out / "fairness_report.html"),
            "json": str(out / "fairness_summary.json"),
            "shap_importance_png": str(out / "shap_importance.png"),
            "shap_local_png": str(out / "shap_local.png"),
        },
    }
    reports.write_json(summary, out / "fairness_summary.json")
    log.info(
        "fairness: %s; SHAP top feature %s; %.1fs",
        summary["fairness_note"],
        next(iter(explained["importance"])),
        summary["seconds"],
    )
    return reports.json_safe(summary)


def kfp_metrics(fairness: Mapping[str, Any] | None, explained: Mapping[str, Any]) -> dict[str, float]:
    """Flat numbers for KFP ``Metrics``: disparities, per-group recall/FPR, and the top SHAP importances."""
    metrics: dict[str, float] = {"fairness_available": 1.0 if fairness else 0.0}
    if fairness:
        metrics["demographic_parity_difference"] = float(fairness["demographic_parity_difference"])
        metrics["equalized_odds_difference"] = float(fairness["equalized_odds_difference"])
        metrics["recall_gap"] = float(fairness["recall_gap"])
        metrics["fpr_gap"] = float(fairness["fpr_gap"])
        metrics["groups_below_support"] = float(len(fairness["groups_below_support"]))
        for group, values in fairness["by_group"].items():
            tag = "".join(ch if ch.isalnum() else "_" for ch in group)
            for m in ("recall", "fpr", "selection_rate", "auprc"):
                metrics[f"{m}_{tag}"] = float(values[m])
    for feature, value in list(explained["importance"].items())[:5]:
        metrics[f"shap_{feature}"] = float(value)
    return {k: v for k, v in metrics.items() if np.isfinite(v)}


def _report_html(
    column: str,
    note: str | None,
    fairness: Mapping[str, Any] | None,
    explained: Mapping[str, Any],
    pngs: Mapping[str, bytes],
    threshold: float,
    n_rows: int,
) -> str:
    parts: list[str] = []
    if fairness is None:
        parts.append(reports.section("Fairness", reports.paragraph(f"Not audited: {note}.", "note")))
    else:
        rows = [{"group": g, **v} for g, v in fairness["by_group"].items()]
        rows.append({"group": "overall", **fairness["overall"]})
        parts.append(
            reports.section(
                f"Fairness by {column!r}",
                reports.paragraph(
                    f"Test window, {n_rows} rows, decision threshold {threshold:.4g}. recall = frauds caught; "
                    "fpr = legitimate customers flagged; selection_rate = share flagged. The attribute is "
                    "only used to group rows; the model never sees it."
                ),
                reports.table_html(rows, ("group", *GROUP_METRICS)),
                reports.table_html(
                    [
                        {
                            "demographic parity difference": fairness["demographic_parity_difference"],
                            "equalised odds difference": fairness["equalized_odds_difference"],
                            "recall gap": fairness["recall_gap"],
                            "FPR gap": fairness["fpr_gap"],
                        }
                    ]
                ),
                reports.paragraph(
                    "Demographic parity difference: largest gap in selection rate between groups. Equalised odds "
                    "difference: the larger of the largest recall gap and the largest FPR gap. Fraud rates "
                    "differ by group, so selection rates are expected to differ; recall and FPR gaps are the "
                    "ones to act on."
                ),
                *(
                    [
                        reports.paragraph(
                            f"Left out of the recall gap (fewer than {fairness['min_group_frauds']} test frauds, "
                            f"so their recall is mostly chance): {', '.join(fairness['groups_below_support'])}. "
                            "Their false-positive rates still count.",
                            "note",
                        )
                    ]
                    if fairness["groups_below_support"]
                    else []
                ),
            )
        )
    importance_rows = [{"feature": f, "mean |SHAP|": v} for f, v in list(explained["importance"].items())[:12]]
    parts.append(
        reports.section(
            "Global explanation (SHAP)",
            reports.paragraph(
                f"Exact TreeSHAP values from XGBoost on {explained['sample_rows']} test rows (every fraud plus "
                "sampled legitimate rows), in log-odds units."
            ),
            reports.img_tag(pngs["importance"], "SHAP global importance and beeswarm"),
            reports.table_html(importance_rows),
        )
    )
    local_rows = [
        {
            "test row": item["row"],
            "score": item["score"],
            "label": item["label"],
            "top contributions": ", ".join(f"{c['feature']} {c['shap']:+.2f}" for c in item["contributions"]),
        }
        for item in explained["local"]
    ]
    parts.append(
        reports.section(
            "Local explanations: top flagged transactions",
            reports.table_html(local_rows),
            reports.img_tag(pngs["local"], "SHAP contributions of the top flagged transactions"),
        )
    )
    return reports.html_page(
        "Fairness and explanations",
        parts,
        subtitle="Per-group error rates on the test window and why the model flags what it flags",
    )


def log_to_mlflow(summary: Mapping[str, Any], tracking_uri: str, experiment: str = "fraud-detection") -> str:
    """Log the audit's metrics, note and files (HTML, PNGs, JSON) to one MLflow run; return its id."""
    import mlflow

    before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        tracking.configure(tracking_uri, experiment)
        with mlflow.start_run(run_name="fairness", tags={"audit": "fairness"}) as run:
            mlflow.log_metrics({k: float(v) for k, v in summary["metrics"].items()})
            mlflow.log_params({"sensitive_column": summary["sensitive_column"] or "(none)"})
            mlflow.set_tag("fairness_note", str(summary["fairness_note"])[:5000])
            for path in summary.get("paths", {}).values():
                if Path(path).is_file():
                    mlflow.log_artifact(path, artifact_path="fairness")
            return str(run.info.run_id)
    finally:
        mlflow.set_tracking_uri(before)


__all__ = ["ExplainParams", "explain", "group_fairness", "kfp_metrics", "log_to_mlflow", "run_fairness", "shap_values"]
