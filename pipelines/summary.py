"""The text a person reads at the end of ``fraud run``: what happened, how good, where everything is."""

from __future__ import annotations

from typing import Any

from pipelines.local import LocalRun


def _meta(outputs: dict[str, Any], name: str) -> dict[str, Any]:
    artifact = outputs.get(name)
    return dict(getattr(artifact, "metadata", {}) or {})


def _path(outputs: dict[str, Any], name: str) -> str:
    artifact = outputs.get(name)
    return str(getattr(artifact, "path", "") or "")


def _mlflow_ui_command(tracking_uri: str) -> str:
    if tracking_uri.startswith("sqlite:///"):
        return f".venv/bin/mlflow ui --backend-store-uri {tracking_uri}"
    return f"open {tracking_uri}"


def render_summary(run: LocalRun, parameters: dict[str, Any]) -> str:
    """A short report of a successful run: data, model quality against its references, artifacts, MLflow."""
    out = run.outputs
    data = _meta(out, "data_summary")
    metrics = _meta(out, "train_metrics")
    model = _meta(out, "model")
    test_data = _meta(out, "test_data")
    windows = ("train", "validation", "test", "current")
    rule = "-" * 78
    lines = [rule, f"Pipeline {parameters.get('data_uri')!s} -> finished in {run.seconds:.1f} s", rule]

    lines.append("Data")
    lines.append(f"  version     {test_data.get('data_version', '?')}")
    lines.append(
        "  windows     "
        + " | ".join(
            f"{w} {int(data.get(f'{w}_rows', 0)):,} ({int(data.get(f'{w}_frauds', 0))} fraud)" for w in windows
        )
    )

    lines.append("Model (test window)")
    auprc = metrics.get("test_auprc", float("nan"))
    lines.append(f"  AUPRC       {auprc:.4f}   (primary metric)")
    if "oracle_test_auprc" in metrics:
        lines.append(
            f"  best possible AUPRC {metrics['oracle_test_auprc']:.4f} from the generator's true probabilities: "
            f"ours is {metrics['auprc_vs_oracle']:.1%} of it"
        )
    else:
        lines.append("  best possible AUPRC n/a (real data: true probabilities are unknown)")
    baseline = metrics.get("baseline_lr_test_auprc", float("nan"))
    lines.append(f"  logistic regression baseline AUPRC {baseline:.4f} (ours is {auprc / baseline:.1f}x)")
    lines.append(
        f"  ROC AUC {metrics.get('test_roc_auc', float('nan')):.4f} | at threshold {model.get('threshold', 0):.4f}: "
        f"precision {metrics.get('test_precision', 0):.3f}, recall {metrics.get('test_recall', 0):.3f}, "
        f"F1 {metrics.get('test_f1', 0):.3f} | "
        f"recall at precision 0.90: {metrics.get('test_recall_at_precision_90', 0):.3f}"
    )
    lines.append(
        f"  confusion   TP {int(metrics.get('test_tp', 0))}  FP {int(metrics.get('test_fp', 0))}  "
        f"FN {int(metrics.get('test_fn', 0))}  TN {int(metrics.get('test_tn', 0)):,}"
        f"   ({int(metrics.get('best_iteration', 0)) + 1} trees)"
    )

    lines.append("Artifacts")
    lines.append(f"  model directory   {_path(out, 'model')}")
    lines.append(f"  test window       {_path(out, 'test_data')}")

    tracking_uri = str(parameters.get("mlflow_tracking_uri", ""))
    lines.append("MLflow")
    lines.append(f"  run {model.get('mlflow_run_id', '?')} in experiment {parameters.get('mlflow_experiment')!r}")
    lines.append(f"  browse: {_mlflow_ui_command(tracking_uri)}")
    lines.append(rule)
    return "\n".join(lines)


def render_failure(run: LocalRun) -> str:
    """Why a run failed, with the failing step's own reason when it gave one."""
    lines = ["", f"Pipeline FAILED after {run.seconds:.1f} s."]
    if run.errors:
        lines += [f"  {error}" for error in run.errors]
    else:
        lines.append(f"  {run.exception or 'a task failed; see its log above'}")
    lines.append("Nothing was registered or exported.")
    return "\n".join(lines)
