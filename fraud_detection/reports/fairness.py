"""The fairness + SHAP report: importance and local-explanation PNGs, one HTML page and the JSON summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

import numpy as np

from fraud_detection import reports
from fraud_detection.audits.explain import Explanation, LocalExplanation
from fraud_detection.audits.fairness import GROUP_METRICS, FairnessResult


@dataclass(frozen=True)
class FairnessFiles(reports.ReportFiles):
    """What :func:`render_fairness` wrote (``fairness_report.html``: the self-contained report)."""

    NAMES: ClassVar[tuple[str, ...]] = (
        "fairness_report.html",
        "fairness_summary.json",
        "shap_importance.png",
        "shap_local.png",
    )
    summary_json: Path
    """``fairness_summary.json``: the result as JSON, with these paths."""
    shap_importance_png: Path
    """``shap_importance.png``: global importance bars and beeswarm."""
    shap_local_png: Path
    """``shap_local.png``: contributions of the top-scored transactions."""


def importance_png(explained: Explanation) -> bytes:
    """Global importance (mean |SHAP|, top 12) beside a beeswarm coloured by the feature's value."""
    features = list(explained.features)
    importance = np.array([explained.importance[f] for f in features])
    shap, values = explained.sample_shap, explained.sample_values
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


def local_png(explanations: list[LocalExplanation]) -> bytes:
    """One horizontal bar chart of SHAP contributions per explained transaction."""
    k = len(explanations)
    fig = reports.new_figure(11.0, 2.2 * k + 0.5)
    axes = np.atleast_1d(fig.subplots(k, 1))
    for ax, item in zip(axes, explanations, strict=True):
        contribs = item.contributions[::-1]
        names = [f"{c.feature} = {c.value:.3g}" for c in contribs]
        shap = [c.shap for c in contribs]
        ax.barh(names, shap, color=["#cf222e" if v > 0 else "#0969da" for v in shap])
        ax.axvline(0.0, color="#57606a", linewidth=0.8)
        ax.set_title(
            f"test row {item.row}: score {item.score:.3f}, label {item.label} (base {item.base:.2f} log-odds)",
            fontsize=9,
        )
        ax.tick_params(labelsize=8)
    axes[-1].set_xlabel("SHAP value (log-odds); red pushes towards fraud")
    return reports.figure_png(fig)


def _fairness_section(result: FairnessResult) -> str:
    fairness = result.fairness
    if fairness is None:
        return reports.section("Fairness", reports.paragraph(f"Not audited: {result.note}.", "note"))
    rows = [{"group": g, **v} for g, v in fairness.by_group.items()]
    rows.append({"group": "overall", **fairness.overall})
    comparison = fairness.recall_comparison
    below = (
        [
            reports.paragraph(
                f"{comparison[0].upper()}{comparison[1:]}. With n test frauds one fraud caught or missed moves a "
                f"group's recall by 1/n, so below {fairness.min_group_frauds} a recall gap is mostly chance; "
                "false-positive rates, measured on legitimate rows, still count.",
                "note",
            )
        ]
        if comparison
        else []
    )
    return reports.section(
        f"Fairness by {result.sensitive_column!r}",
        reports.paragraph(
            f"Test window, {result.test_rows} rows, decision threshold {result.threshold:.4g}. recall = frauds "
            "caught; fpr = legitimate customers flagged; selection_rate = share flagged. The attribute is "
            "only used to group rows; the model never sees it."
        ),
        reports.table_html(rows, ("group", *GROUP_METRICS)),
        reports.table_html(
            [
                {
                    "demographic parity difference": fairness.demographic_parity_difference,
                    "equalised odds difference": fairness.equalized_odds_difference,
                    "recall gap": fairness.recall_gap,
                    "FPR gap": fairness.fpr_gap,
                }
            ]
        ),
        *below,
        reports.paragraph(
            "Demographic parity difference: largest gap in selection rate between groups. Equalised odds "
            "difference: the larger of the largest recall gap and the largest FPR gap. Fraud rates "
            "differ by group, so selection rates are expected to differ; recall and FPR gaps are the "
            "ones to act on."
        ),
    )


def report_html(result: FairnessResult, importance: bytes, local: bytes) -> str:
    """The self-contained HTML report, with the two PNGs (from :func:`importance_png`, :func:`local_png`)."""
    explained = result.shap
    importance_rows = [{"feature": f, "mean |SHAP|": v} for f, v in list(explained.importance.items())[:12]]
    local_rows = [
        {
            "test row": item.row,
            "score": item.score,
            "label": item.label,
            "top contributions": ", ".join(f"{c.feature} {c.shap:+.2f}" for c in item.contributions),
        }
        for item in explained.local
    ]
    parts = [
        _fairness_section(result),
        reports.section(
            "Global explanation (SHAP)",
            reports.paragraph(
                f"{result.explainer[0].upper()}{result.explainer[1:]} on {explained.sample_rows} test rows "
                "(every fraud plus sampled legitimate rows), in log-odds units that add up to the model's "
                "log-odds."
            ),
            reports.img_tag(importance, "SHAP global importance and beeswarm"),
            reports.table_html(importance_rows),
        ),
        reports.section(
            "Local explanations: top flagged transactions",
            reports.table_html(local_rows),
            reports.img_tag(local, "SHAP contributions of the top flagged transactions"),
        ),
    ]
    return reports.html_page(
        "Fairness and explanations",
        parts,
        subtitle="Per-group error rates on the test window and why the model flags what it flags",
    )


def render_fairness(result: FairnessResult, out_dir: Path | str) -> FairnessFiles:
    """Write the audit's report files into ``out_dir`` (created if needed) and return their paths."""
    files = FairnessFiles.in_folder(out_dir)
    importance = importance_png(result.shap)
    local = local_png(result.shap.local)
    files.shap_importance_png.write_bytes(importance)
    files.shap_local_png.write_bytes(local)
    files.report_html.write_text(report_html(result, importance, local), encoding="utf-8")
    paths = {
        "html": str(files.report_html),
        "json": str(files.summary_json),
        "shap_importance_png": str(files.shap_importance_png),
        "shap_local_png": str(files.shap_local_png),
    }
    reports.write_json({**result.to_dict(), "paths": paths}, files.summary_json)
    return files


__all__ = ["FairnessFiles", "importance_png", "local_png", "render_fairness", "report_html"]
