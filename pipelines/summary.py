"""The text a person reads at the end of ``fraud run``: what happened, how good, where everything is."""

from __future__ import annotations

import json
import textwrap
from pathlib import Path
from typing import Any

from fraud_detection.metrics import TEST, TUNED_PREFIX, VALIDATION, Detail, Metric, Run, of, on
from pipelines.local import LocalRun


def _meta(outputs: dict[str, Any], name: str) -> dict[str, Any]:
    artifact = outputs.get(name)
    return dict(getattr(artifact, "metadata", {}) or {})


def _path(outputs: dict[str, Any], name: str) -> str:
    artifact = outputs.get(name)
    return str(getattr(artifact, "path", "") or "")


def _mlflow_ui_command(tracking_uri: str) -> str:
    if tracking_uri.startswith("sqlite:///"):
        return ".venv/bin/fraud ui   (the MLflow UI on this store; past runs: .venv/bin/fraud runs)"
    return f"open {tracking_uri}"


def render_summary(run: LocalRun, parameters: dict[str, Any], report: Path | None = None, steps: bool = True) -> str:
    """A short report of a successful run: data, model quality against its references, artifacts, MLflow.

    Args:
        report: the run's report page, which links every audit report (listed one by one without it).
        steps: include the step times (``fraud run`` leaves them out when its progress lines showed them).
    """
    out = run.outputs
    data = _meta(out, "data_summary")
    metrics = _meta(out, "train_metrics")
    model = _meta(out, "model")
    test_data = _meta(out, "test_data")
    windows = ("train", "validation", "test", "current")
    rule = "-" * 78
    lines = [rule, f"Pipeline {parameters.get('data_uri')!s} -> finished in {run.seconds:.1f} s", rule]
    if steps:
        lines += _step_lines(run)

    lines.append("Data")
    lines.append(f"  version     {test_data.get('data_version', '?')}")
    lines.append(
        "  windows     rows/frauds: "
        + " | ".join(f"{w} {int(data.get(f'{w}_rows', 0)):,}/{int(data.get(f'{w}_frauds', 0))}" for w in windows)
    )

    lines += _bakeoff_lines(_meta(out, "bakeoff"))
    lines += _tuning_lines(metrics)
    lines.append(f"Model: {model.get('framework', 'xgboost')} (test window)")
    auprc = metrics.get(on(TEST, Metric.AUPRC), float("nan"))
    lines.append(f"  AUPRC       {auprc:.4f}   (primary metric)")
    if Run.TEST_CARD_PRECISION_AT_K in metrics:
        k = int(metrics[Run.CARD_PRECISION_K])
        lines.append(
            f"  card precision@{k} {metrics[Run.TEST_CARD_PRECISION_AT_K]:.4f} per day: of the {k} cards with the "
            "highest score each day, the share that had a fraud"
        )
    if Run.ORACLE_TEST_AUPRC in metrics:
        lines.append(
            f"  best possible AUPRC {metrics[Run.ORACLE_TEST_AUPRC]:.4f} from the generator's true probabilities: "
            f"ours is {metrics[Run.AUPRC_VS_ORACLE]:.1%} of it"
        )
    else:
        lines.append("  best possible AUPRC n/a (real data: true probabilities are unknown)")
    baseline = metrics.get(Run.BASELINE_LR_TEST_AUPRC, float("nan"))
    lines.append(f"  logistic regression baseline AUPRC {baseline:.4f} (ours is {auprc / baseline:.1f}x)")
    test = {m: metrics.get(on(TEST, m), 0) for m in Metric}
    lines.append(
        f"  ROC AUC {metrics.get(on(TEST, Metric.ROC_AUC), float('nan')):.4f} | "
        f"at threshold {model.get('threshold', 0):.4f}: "
        f"precision {test[Metric.PRECISION]:.3f}, recall {test[Metric.RECALL]:.3f}, F1 {test[Metric.F1]:.3f} | "
        f"recall at precision 0.90: {test[Metric.RECALL_AT_PRECISION_90]:.3f}"
    )
    trees = metrics.get(Detail.BEST_ITERATION)
    lines.append(
        f"  confusion   TP {int(test[Metric.TP])}  FP {int(test[Metric.FP])}  "
        f"FN {int(test[Metric.FN])}  TN {int(test[Metric.TN]):,}"
        + (f"   ({int(trees) + 1} trees)" if trees is not None else "")
    )

    lines += _poison_lines(out)
    lines += _fairness_lines(_meta(out, "fairness_metrics"), _fairness_groups(out))
    lines += _drift_lines(_meta(out, "drift_metrics"))
    lines += _decision_lines(_meta(out, "decision"))

    lines.append("Artifacts")
    lines.append(f"  model directory   {_path(out, 'model')}")
    if report is not None:
        lines.append(f"  report page       {report}  (+ reports, summary.md, run.log)")
    else:
        lines.append(f"  test window       {_path(out, 'test_data')}")
        for label, name in (
            ("poison report", "poison_report"),
            ("fairness report", "fairness_report"),
            ("drift report", "drift_report"),
            ("decision record", "decision"),
        ):
            if name in out:
                lines.append(f"  {label:<17} {_path(out, name)}")
    if run.log_path and report is None:
        lines.append(f"  full log          {run.log_path}")

    tracking_uri = str(parameters.get("mlflow_tracking_uri", ""))
    lines.append(f"MLflow run {model.get('mlflow_run_id', '?')} in experiment {parameters.get('mlflow_experiment')!r}")
    lines.append(f"  browse: {_mlflow_ui_command(tracking_uri)}")
    lines.append(rule)
    return "\n".join(lines)


def _step_lines(run: LocalRun) -> list[str]:
    if not run.steps:
        return []
    parts = []
    for step in run.steps:
        if step.started > 1:
            parts.append(f"{step.name} x{step.started} {step.wall_seconds:.1f}s (busy {step.busy_seconds:.1f}s)")
        else:
            parts.append(f"{step.name} {step.wall_seconds:.1f}s")
    return ["Steps (wall time)", *textwrap.wrap(" | ".join(parts), 76, initial_indent="  ", subsequent_indent="  ")]


def _bakeoff_lines(bakeoff: dict[str, Any]) -> list[str]:
    """The bake-off in two or three lines: each candidate's validation / test AUPRC, the winner starred."""
    candidates = bakeoff.get("candidates") or []
    if not candidates:
        return []
    cells = [
        f"{c['family']}{'*' if c.get('winner') else ''} "
        f"{c[on(VALIDATION, Metric.AUPRC)]:.3f}/{c[on(TEST, Metric.AUPRC)]:.3f}"
        for c in candidates
    ]
    return [
        "Bake-off (validation/test AUPRC; * = winner, chosen on validation only)",
        *textwrap.wrap(" | ".join(cells), 76, initial_indent="  ", subsequent_indent="  "),
    ]


def _tuning_lines(metrics: dict[str, Any]) -> list[str]:
    """Each tuned family's trial count and best values (``<family>_tune_trials``, ``<family>_tuned_<name>``)."""
    suffix = of("", Detail.TUNE_TRIALS)
    lines = []
    for key in sorted(k for k in metrics if k.endswith(suffix)):
        family = key.removesuffix(suffix)
        prefix = of(family, TUNED_PREFIX)
        best = " ".join(
            f"{k.removeprefix(prefix)}={float(v):.4g}" for k, v in sorted(metrics.items()) if k.startswith(prefix)
        )
        pruned = int(metrics.get(of(family, Detail.TUNE_PRUNED), 0))
        seconds = float(metrics.get(of(family, Detail.TUNE_SECONDS), 0))
        text = f"{family}: {int(metrics[key])} trials ({pruned} pruned) in {seconds:.0f}s; best {best}"
        lines += textwrap.wrap(text, 76, initial_indent="  ", subsequent_indent="    ")
    return ["Tuning (on validation; the best trial's values trained each family)", *lines] if lines else []


def _num(value: Any, digits: int = 3) -> str:
    return "-" if value is None else f"{float(value):.{digits}f}"


def _poison_lines(out: dict[str, Any]) -> list[str]:
    """The degradation table, naming the model the sweep retrains, with the recovery shown only beyond noise."""
    from fraud_detection.audits.poison_results import NOISE_SES
    from fraud_detection.reports.poison import WITHIN_NOISE, recovered_text, sweep_model

    path = _path(out, "poison_table")
    if not path:
        return []
    rows = json.loads(Path(path).read_text())
    model = sweep_model(_meta(out, "model").get("framework", ""))
    lines = [
        f"Poison sweep (training labels flipped, clean test window): retrains {model}",
        f"  {'attack':<9} {'level':>6} {'AUPRC':>7} {'defended':>9} {'recovered':>9} {'recall':>7} {'defended':>9}",
    ]
    clean_rows = set()
    for row in rows:
        if row["level_pct"] == 0:
            # every attack's 0% level is the same clean training run: show it once
            clean = (row["auprc"], row.get("auprc_defended"), row["recall"], row.get("recall_defended"))
            if clean in clean_rows:
                continue
            clean_rows.add(clean)
        lines.append(
            f"  {row['kind']:<9} {row['level_pct']:>5g}% {_num(row['auprc']):>7} {_num(row.get('auprc_defended')):>9} "
            f"{recovered_text(row) or '-':>9} {_num(row['recall']):>7} {_num(row.get('recall_defended')):>9}"
        )
    noise = rows[0].get("auprc_noise") if rows else None
    if noise is not None and any(row.get("auprc_defended") is not None for row in rows):
        # one line: the whole default run's output is held to 60 lines (tests/test_run_ux.py)
        lines.append(
            f"  {WITHIN_NOISE} = loss within noise (< {noise:.3f}: {NOISE_SES:g} bootstrap SEs of the clean AUPRC)"
        )
    return lines


def _fairness_groups(out: dict[str, Any]) -> dict[str, dict[str, Any]]:
    """Per-group metrics by the groups' own names, from the fairness summary (metric keys cannot hold ``+``)."""
    path = _path(out, "fairness_summary")
    if not path or not Path(path).is_file():
        return {}
    summary = json.loads(Path(path).read_text())
    return dict((summary.get("fairness") or {}).get("by_group") or {})


def _fairness_lines(metrics: dict[str, Any], groups: dict[str, dict[str, Any]]) -> list[str]:
    """The fairness figures, saying in words when the recall comparison was skipped or partial."""
    from fraud_detection.audits.fairness import MIN_GROUP_FRAUDS, recall_comparison

    if not metrics:
        return []
    if not metrics.get("fairness_available"):
        return ["Fairness", "  not audited: the data has no sensitive attribute column (SHAP explanations still run)"]
    lines = [
        "Fairness (test window, by the sensitive attribute)",
        f"  equalised-odds difference {metrics['equalized_odds_difference']:.3f} | "
        f"demographic-parity difference {metrics['demographic_parity_difference']:.5f}",
    ]
    comparison = recall_comparison(groups, int(metrics.get("min_group_frauds", MIN_GROUP_FRAUDS)))
    if comparison:
        lines += textwrap.wrap(comparison, 78, initial_indent="  ", subsequent_indent="  ")
    for group, values in sorted(groups.items()):
        lines.append(
            f"  {group:<10} recall {_num(values.get('recall'))}  FPR {_num(values.get('fpr'), 5)}  "
            f"AUPRC {_num(values.get('auprc'))}  ({int(values.get('frauds') or 0)} test frauds)"
        )
    return lines


def _drift_lines(metrics: dict[str, Any]) -> list[str]:
    if not metrics:
        return []
    verdict = "DRIFTED" if metrics.get("drifted") else "no drift"
    score = f" | score drift {metrics['score_drift']:.3f}" if "score_drift" in metrics else ""
    return [
        "Drift (training window vs current window, model features only)",
        f"  {verdict}: {int(metrics.get('n_drifted_features', 0))} of {int(metrics.get('n_features', 29))} features "
        "drifted "
        f"(share {metrics.get('drift_share', 0):.2f}){score}",
    ]


def _decision_lines(decision: dict[str, Any]) -> list[str]:
    if not decision:
        return []
    verdict = "PROMOTED" if decision.get("promoted") else "NOT PROMOTED"
    lines = [f"Promotion: {verdict} - {decision.get('reason', '')}"]
    for gate in decision.get("gates", []):
        bound = gate.get("bound")
        bound_text = f"{gate['comparison']} {_num(bound, 4)}" if bound is not None else gate["comparison"]
        note = f"  ({gate['note']})" if gate.get("note") else ""
        lines.append(
            f"  {'pass' if gate['passed'] else 'FAIL'}  {gate['name']:<14} {_num(gate.get('value'), 4):>7} "
            f"{bound_text}{note}"
        )
    version = decision.get("candidate_version")
    if decision.get("promoted"):
        lines.append(f"  champion is now version {version}, served from {decision.get('serving_uri')}")
        lines.append("  serve it: make serve   (then: make predict)")
    elif version:
        lines.append(f"  registered as version {version} with alias 'challenger'; champion unchanged")
    return lines


def render_failure(run: LocalRun) -> str:
    """Why a run failed, from the steps' own records (:mod:`components.outcome`): each failed step with its reason
    once, then the step's own last log lines. An error raised on purpose (bad data, bad parameters) explains
    itself; an unexpected one also names its type and where it was raised, and points to the full log."""
    lines = ["", f"Pipeline FAILED after {run.seconds:.1f} s."]
    for outcome in run.failures:
        failure = outcome.failure
        if failure is None:
            continue
        if failure.deliberate:
            lines.append(f"  {outcome.step}: {failure.reason}")
        else:
            where = f" at {failure.where}" if failure.where else ""
            lines.append(f"  {outcome.step}: unexpected {failure.error_type}{where}: {failure.reason}")
        if outcome.log_tail:
            lines.append(f"Last log lines of {outcome.step}:")
            lines += [f"  | {line[:200]}" for line in outcome.log_tail]
    if not run.failures:
        # No record: the task died before its step began (or was killed); kfp.local's own message names it.
        tasks = ", ".join(run.failed_tasks) or "a task"
        lines.append(f"  {tasks} failed without a record of its own: {run.exception or 'see the log'}")
    if run.log_path and not all(o.failure and o.failure.deliberate for o in run.failures):
        lines.append(f"Full log: {run.log_path}")
    lines.append("Nothing was registered or exported.")
    return "\n".join(lines)
