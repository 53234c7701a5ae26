"""One page per pipeline run: the summary, metrics, candidates, the audits' plots and reports, the promotion
decision and links into MLflow; and the same run as Markdown for the Kubeflow dashboard.

Rendering only: :func:`fraud_detection.steps.report.report_step` gathers a :class:`RunFacts` from the steps'
outputs; this module turns it into HTML and Markdown.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from fraud_detection.audits.fairness import MIN_GROUP_FRAUDS, recall_comparison
from fraud_detection.families import CANDIDATES, XGBOOST
from fraud_detection.metrics import TEST, VALIDATION, Detail, Metric, Run, of, on
from fraud_detection.reports import (
    Link,
    format_value,
    html_page,
    img_tag,
    markdown_table,
    paragraph,
    section,
    table_html,
)
from fraud_detection.reports.poison import noise_text, recovered_text, sweep_model

WINDOWS = ("train", "validation", "test", "current")

_IMG = re.compile(r'<img src="data:image/png;base64,[A-Za-z0-9+/=]+"[^>]*>')

UI_ADDRESS = "http://127.0.0.1:5000"
"""Where ``fraud ui`` serves the MLflow UI of a local (SQLite) store; the report's MLflow links point there."""


@dataclass
class RunFacts:
    """What one run measured and decided, as plain values (no KFP, no MLflow objects)."""

    data_source: str
    data_version: str
    windows: dict[str, Any]
    """``<window>_rows`` and ``<window>_frauds`` for each window."""
    metrics: dict[str, Any]
    """The train step's metrics (``test_auprc``, ``oracle_test_auprc``, ...)."""
    model: dict[str, Any]
    """The candidate's metadata: ``threshold``, ``mlflow_run_id``, ``framework``."""
    poison_rows: list[dict[str, Any]] = field(default_factory=list)
    fairness: dict[str, Any] = field(default_factory=dict)
    fairness_groups: dict[str, dict[str, Any]] = field(default_factory=dict)
    drift: dict[str, Any] = field(default_factory=dict)
    decision: dict[str, Any] = field(default_factory=dict)
    reports: dict[str, str] = field(default_factory=dict)
    """Each audit report's label and a link a browser opens (file URI, console URL)."""
    plots: list[str] = field(default_factory=list)
    """``<img>`` tags taken from the audit reports."""
    mlflow: dict[str, str] = field(default_factory=dict)
    """``ui`` (base address), ``experiment_id``, ``experiment``, ``model_name``, ``tracking_uri``."""
    candidate_runs: dict[str, str] = field(default_factory=dict)
    """Each bake-off candidate's MLflow run id (the training run's children), by family."""
    tuning_trials: dict[str, list[dict[str, Any]]] = field(default_factory=dict)
    """A tuned family's trials (``values``, ``auprc``, ``state``), by family (the candidates' nested runs)."""


def browser_link(uri: str) -> str:
    """A link a browser can open for an artifact URI: ``gs://`` to the Cloud Storage console, a path to a file
    URI, anything else unchanged."""
    if uri.startswith("gs://"):
        return "https://storage.cloud.google.com/" + uri[len("gs://") :]
    if uri.startswith("/"):
        return Path(uri).as_uri()
    return uri


def plots_in(report_html: str, limit: int = 4) -> list[str]:
    """The embedded PNG ``<img>`` tags of an audit report (at most ``limit``), to show them on the run page."""
    return _IMG.findall(report_html)[:limit]


def mlflow_links(facts: RunFacts) -> dict[str, str]:
    """Links into the MLflow UI: the training run, its experiment, and the registered model version."""
    ui = facts.mlflow.get("ui", "").rstrip("/")
    if not ui:
        return {}
    links = {}
    experiment_id = facts.mlflow.get("experiment_id")
    run_id = facts.model.get("mlflow_run_id")
    if experiment_id:
        links["experiment"] = f"{ui}/#/experiments/{experiment_id}"
        if run_id:
            links["training run"] = f"{ui}/#/experiments/{experiment_id}/runs/{run_id}"
    version = facts.decision.get("candidate_version")
    if version and facts.mlflow.get("model_name"):
        links[f"model version {version}"] = f"{ui}/#/models/{facts.mlflow['model_name']}/versions/{version}"
    return links


def _verdict(decision: dict[str, Any]) -> str:
    if not decision:
        return "no decision"
    return "PROMOTED" if decision.get("promoted") else "NOT PROMOTED"


def _gate_rows(decision: dict[str, Any]) -> list[dict[str, Any]]:
    rows = []
    for gate in decision.get("gates", []):
        bound = gate.get("bound")
        rows.append(
            {
                "gate": gate["name"],
                "value": gate.get("value"),
                "bound": f"{gate['comparison']} {format_value(bound)}" if bound is not None else gate["comparison"],
                "result": "pass" if gate.get("passed") else "FAIL",
                "note": gate.get("note") or "",
            }
        )
    return rows


def _model_rows(metrics: dict[str, Any], model: dict[str, Any]) -> list[dict[str, Any]]:
    names = [
        ("AUPRC (primary)", on(TEST, Metric.AUPRC)),
        (f"card precision@{int(metrics.get(Run.CARD_PRECISION_K, 0))} per day", Run.TEST_CARD_PRECISION_AT_K),
        ("best possible AUPRC (true probabilities)", Run.ORACLE_TEST_AUPRC),
        ("share of the best possible", Run.AUPRC_VS_ORACLE),
        ("logistic regression baseline AUPRC", Run.BASELINE_LR_TEST_AUPRC),
        ("ROC AUC", on(TEST, Metric.ROC_AUC)),
        ("precision at the threshold", on(TEST, Metric.PRECISION)),
        ("recall at the threshold", on(TEST, Metric.RECALL)),
        ("F1 at the threshold", on(TEST, Metric.F1)),
        ("recall at precision 0.90", on(TEST, Metric.RECALL_AT_PRECISION_90)),
    ]
    rows: list[dict[str, Any]] = [{"metric": label, "value": metrics[key]} for label, key in names if key in metrics]
    rows.append({"metric": "decision threshold", "value": model.get("threshold")})
    counts = (Metric.TP, Metric.FP, Metric.FN, Metric.TN)
    confusion = " ".join(f"{k.upper()} {int(metrics.get(on(TEST, k), 0)):,}" for k in counts)
    rows.append({"metric": "confusion (test window)", "value": confusion})
    return rows


def _run_url(facts: RunFacts, run_id: str) -> str:
    ui = facts.mlflow.get("ui", "").rstrip("/")
    experiment_id = facts.mlflow.get("experiment_id")
    return f"{ui}/#/experiments/{experiment_id}/runs/{run_id}" if ui and experiment_id and run_id else ""


def _candidate_rows(facts: RunFacts) -> list[dict[str, Any]]:
    """One row per bake-off candidate, from the select step's ``<family>_validation_auprc``, ``_test_auprc``,
    ``_threshold`` and ``_best_iteration`` (XGBoost's trees) metrics, with its MLflow run (a link when the UI's
    address is known). A column no candidate has a value for is left out."""
    m = facts.metrics
    winner = facts.model.get("framework", XGBOOST)
    validation, test = on(VALIDATION, Metric.AUPRC), on(TEST, Metric.AUPRC)
    best_iteration, threshold_key = Detail.BEST_ITERATION, Detail.THRESHOLD
    families = [f for f in CANDIDATES if of(f, validation) in m] or [winner]
    rows = []
    for family in families:
        best = m.get(of(family, best_iteration), m.get(best_iteration) if family == winner == XGBOOST else None)
        threshold = m.get(of(family, threshold_key), facts.model.get("threshold") if family == winner else None)
        # the winner's model is in the training run itself, when the candidates' runs cannot be looked up
        run_id = facts.candidate_runs.get(family) or (facts.model.get("mlflow_run_id", "") if family == winner else "")
        url = _run_url(facts, run_id)
        rows.append(
            {
                "candidate": family + (" (winner)" if family == winner else ""),
                "validation AUPRC": m.get(of(family, validation), m.get(validation)),
                "test AUPRC": m.get(of(family, test), m.get(test)),
                "trees": None if best is None else int(best) + 1,
                "threshold": threshold,
                "MLflow run": Link(run_id, url) if url else run_id or None,
            }
        )
    filled = [c for c in rows[0] if any(row[c] is not None for row in rows)]
    return [{c: row[c] for c in filled} for row in rows]


def _window_rows(windows: dict[str, Any]) -> list[dict[str, Any]]:
    return [
        {"window": w, "rows": f"{int(windows.get(f'{w}_rows', 0)):,}", "frauds": int(windows.get(f"{w}_frauds", 0))}
        for w in WINDOWS
    ]


def _poison_rows(rows: list[dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {
            "attack": r["kind"],
            "level": f"{r['level_pct']:g}%",
            "AUPRC": r.get("auprc"),
            "defended": r.get("auprc_defended"),
            "recovered": recovered_text(r),
            "recall": r.get("recall"),
        }
        for r in rows
    ]


def _poison_text(facts: RunFacts) -> list[str]:
    """What the sweep retrains, and when a recovery share is shown."""
    if not facts.poison_rows:
        return ["not measured"]
    model = sweep_model(facts.model.get("framework", ""))
    return [
        f"{model[0].upper()}{model[1:]} retrained at each level with training labels flipped, scored on the "
        "clean test window.",
        noise_text(facts.poison_rows[0].get("auprc_noise")),
    ]


def _group_rows(groups: dict[str, dict[str, Any]]) -> list[dict[str, Any]]:
    return [
        {"group": g, "recall": v.get("recall"), "FPR": v.get("fpr"), "AUPRC": v.get("auprc"), "frauds": v.get("frauds")}
        for g, v in sorted(groups.items())
    ]


def _drift_text(drift: dict[str, Any]) -> str:
    if not drift:
        return "not measured"
    verdict = "DRIFTED" if drift.get("drifted") else "no drift"
    score = f"; score drift {drift['score_drift']:.3f}" if "score_drift" in drift else ""
    return (
        f"{verdict}: {int(drift.get('n_drifted_features', 0))} of {int(drift.get('n_features', 29))} model features "
        "drifted "
        f"(share {drift.get('drift_share', 0):.2f}){score}"
    )


def _fairness_text(fairness: dict[str, Any], groups: dict[str, dict[str, Any]]) -> str:
    if not fairness:
        return "not measured"
    if not fairness.get("fairness_available"):
        return "not audited: the data has no sensitive attribute column"
    comparison = recall_comparison(groups, int(fairness.get("min_group_frauds", MIN_GROUP_FRAUDS)))
    return (
        f"equalised-odds difference {fairness['equalized_odds_difference']:.3f}; "
        f"demographic-parity difference {fairness['demographic_parity_difference']:.5f}"
        + (f". {comparison[0].upper()}{comparison[1:]}." if comparison else "")
    )


def _headline(facts: RunFacts) -> dict[str, str]:
    auprc = facts.metrics.get(on(TEST, Metric.AUPRC))
    items = {
        "Decision": _verdict(facts.decision),
        "Test AUPRC": "n/a" if auprc is None else f"{auprc:.4f}",
    }
    if Run.TEST_CARD_PRECISION_AT_K in facts.metrics:
        k = int(facts.metrics[Run.CARD_PRECISION_K])
        items[f"Card precision@{k}"] = f"{facts.metrics[Run.TEST_CARD_PRECISION_AT_K]:.4f}"
    if Run.ORACLE_TEST_AUPRC in facts.metrics:
        items["Best possible"] = f"{facts.metrics[Run.ORACLE_TEST_AUPRC]:.4f}"
    if Run.BASELINE_LR_TEST_AUPRC in facts.metrics:
        items["Baseline"] = f"{facts.metrics[Run.BASELINE_LR_TEST_AUPRC]:.4f}"
    if facts.decision.get("candidate_version"):
        items["Model version"] = str(facts.decision["candidate_version"])
    return items


_CARDS = """<style>
.cards { display: flex; flex-wrap: wrap; gap: 1rem; margin: 1rem 0; }
.card { border: 1px solid #d0d7de; border-radius: 6px; padding: 0.6rem 1.1rem; min-width: 9rem; }
.card .label { color: #57606a; font-size: 0.85rem; }
.card .value { font-size: 1.7rem; font-weight: 600; }
.links a { margin-right: 1.2rem; }
</style>"""


def _link_list(links: dict[str, str]) -> str:
    items = "".join(f'<a href="{html.escape(url)}">{html.escape(label)}</a>' for label, url in links.items())
    return f'<p class="links">{items}</p>'


def _tuning_section(facts: RunFacts) -> list[str]:
    """The tuning trials' parallel-coordinates plot, when a family was tuned (docs/tuning.md)."""
    from fraud_detection.tuning.plot import trials_png
    from fraud_detection.tuning.study import TUNABLE

    png = trials_png(facts.tuning_trials, {f: t.space for f, t in TUNABLE.items()})
    if png is None:
        return []
    counts = ", ".join(f"{family} {len(trials)}" for family, trials in facts.tuning_trials.items())
    text = f"Trials on the validation window ({counts}); the best trial's values trained each family."
    return [section("Tuning", paragraph(text), img_tag(png, "tuning trials, parallel coordinates"))]


def render_html(facts: RunFacts) -> str:
    """The run's index page: self-contained (inline style, embedded plots); links to the full audit reports and
    into MLflow."""
    cards = "".join(
        f'<div class="card"><div class="label">{html.escape(k)}</div><div class="value">{html.escape(v)}</div></div>'
        for k, v in _headline(facts).items()
    )
    decision = facts.decision
    promotion = [paragraph(f"{_verdict(decision)}: {decision.get('reason', '')}")]
    if decision.get("promoted") and decision.get("serving_uri"):
        promotion.append(
            paragraph(
                f"Champion is now version {decision.get('candidate_version')}, served from {decision['serving_uri']}"
            )
        )
    promotion.append(table_html(_gate_rows(decision), ["gate", "value", "bound", "result", "note"]))
    links = mlflow_links(facts)
    mlflow_parts = [
        paragraph(
            f"Training run {facts.model.get('mlflow_run_id', '?')} in experiment "
            f"{facts.mlflow.get('experiment', '?')!r} ({facts.mlflow.get('tracking_uri', '')})."
        ),
        _link_list(links) if links else paragraph("No MLflow UI address is known for this tracking store."),
    ]
    if facts.mlflow.get("ui") == UI_ADDRESS:
        mlflow_parts.append(paragraph("These links work while `fraud ui` runs (it serves this store there)."))
    sections = [
        _CARDS + f'<div class="cards">{cards}</div>',
        section("Promotion decision", *promotion),
        section("Model (test window)", table_html(_model_rows(facts.metrics, facts.model), ["metric", "value"])),
        section("Candidates", table_html(_candidate_rows(facts))),
        *_tuning_section(facts),
        section(
            "Data",
            paragraph(f"Source {facts.data_source}; version {facts.data_version}"),
            table_html(_window_rows(facts.windows), ["window", "rows", "frauds"]),
        ),
        section(
            "Poison sweep",
            *map(paragraph, _poison_text(facts)),
            table_html(_poison_rows(facts.poison_rows)),
            *facts.plots[:1],
        ),
        section(
            "Fairness and explanations",
            paragraph(_fairness_text(facts.fairness, facts.fairness_groups)),
            table_html(_group_rows(facts.fairness_groups)) if facts.fairness_groups else "",
            *facts.plots[1:],
        ),
        section("Drift", paragraph(_drift_text(facts.drift))),
        section("Full reports", _link_list({label: browser_link(uri) for label, uri in facts.reports.items()})),
        section("MLflow", *mlflow_parts),
    ]
    subtitle = f"data {facts.data_source} · version {facts.data_version[:19]}"
    return html_page(f"Fraud pipeline run: {_verdict(decision)}", sections, subtitle=subtitle)


def render_markdown(facts: RunFacts) -> str:
    """The run summary as Markdown (the Kubeflow dashboard shows it as the run's Markdown artifact)."""
    decision = facts.decision
    head = " | ".join(f"**{k}** {v}" for k, v in _headline(facts).items())
    lines = [
        f"# Fraud pipeline run: {_verdict(decision)}",
        "",
        head,
        "",
        f"{_verdict(decision)}: {decision.get('reason', '')}",
        "",
        markdown_table(_gate_rows(decision), ["gate", "value", "bound", "result", "note"]),
        "",
        "## Model (test window)",
        "",
        markdown_table(_model_rows(facts.metrics, facts.model), ["metric", "value"]),
        "",
        "## Candidates",
        "",
        markdown_table(_candidate_rows(facts)),
        "",
        "## Data",
        "",
        f"Source `{facts.data_source}`, version `{facts.data_version}`",
        "",
        markdown_table(_window_rows(facts.windows), ["window", "rows", "frauds"]),
        "",
        "## Poison sweep",
        "",
        *(line for text in _poison_text(facts) for line in (text, "")),
        markdown_table(_poison_rows(facts.poison_rows)),
        "",
        "## Fairness",
        "",
        _fairness_text(facts.fairness, facts.fairness_groups),
        "",
    ]
    if facts.fairness_groups:
        lines += [markdown_table(_group_rows(facts.fairness_groups)), ""]
    lines += ["## Drift", "", _drift_text(facts.drift), ""]
    links = mlflow_links(facts)
    if links:
        lines += ["## MLflow", "", " · ".join(f"[{label}]({url})" for label, url in links.items()), ""]
    return "\n".join(lines)


__all__ = ["RunFacts", "browser_link", "mlflow_links", "plots_in", "render_html", "render_markdown"]
