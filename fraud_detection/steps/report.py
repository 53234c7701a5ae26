"""The report step: gather what the run's steps wrote into one page (HTML) and one summary (Markdown)."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from fraud_detection.reports import run as run_report

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class ReportInputs:
    """The run's outputs, as the report step reads them: what the steps measured and decided (the
    :class:`~fraud_detection.reports.run.RunFacts` their metadata holds), and the files to read the rest from."""

    measured: run_report.RunFacts
    """The facts taken from the steps' metadata; :func:`gather` adds what it reads from files and MLflow."""
    poison_table: Path | None
    fairness_summary: Path | None
    reports: dict[str, tuple[Path | None, str]]
    """Label -> (local path to read its plots from, URI to link to)."""


REPORT_LABELS = {
    "poison report": "poison_report",
    "fairness report": "fairness_report",
    "drift report": "drift_report",
    "decision record": "decision",
}
"""The full reports the run page links to: label -> the pipeline output holding it."""


def _meta(artifacts: Mapping[str, Any], name: str) -> dict[str, Any]:
    return dict(getattr(artifacts.get(name), "metadata", None) or {})


def _local(artifacts: Mapping[str, Any], name: str) -> Path | None:
    path = getattr(artifacts.get(name), "path", "") or ""
    return Path(path) if path else None


def inputs_from_artifacts(
    artifacts: Mapping[str, Any], data_uri: str, links: Mapping[str, str] | None = None
) -> ReportInputs:
    """The report's inputs from the run's artifacts, by pipeline output name (anything with ``metadata``,
    ``path`` and ``uri``: KFP input artifacts in the component, ``kfp.local``'s outputs in ``fraud run``).

    Args:
        links: where the page links each full report (by label); default: the artifact's own URI.
    """
    test = _meta(artifacts, "test_data")
    reports = {}
    for label, name in REPORT_LABELS.items():
        if name in artifacts:
            uri = (links or {}).get(label) or str(getattr(artifacts[name], "uri", "") or "")
            reports[label] = (_local(artifacts, name), uri)
    measured = run_report.RunFacts(
        data_source=str(test.get("source", data_uri)),
        data_version=str(test.get("data_version", "")),
        windows=_meta(artifacts, "data_summary"),
        metrics=_meta(artifacts, "train_metrics"),
        model=_meta(artifacts, "model"),
        decision=_meta(artifacts, "decision"),
        fairness=_meta(artifacts, "fairness_metrics"),
        drift=_meta(artifacts, "drift_metrics"),
    )
    return ReportInputs(
        measured=measured,
        poison_table=_local(artifacts, "poison_table"),
        fairness_summary=_local(artifacts, "fairness_summary"),
        reports=reports,
    )


def mlflow_context(tracking_uri: str, experiment: str, model_name: str) -> dict[str, str]:
    """The MLflow UI's address for this store (a server's own address; ``fraud ui``'s for a SQLite file) and the
    experiment's id, for the report's links."""
    context = {"tracking_uri": tracking_uri, "experiment": experiment, "model_name": model_name}
    if tracking_uri.startswith(("http://", "https://")):
        context["ui"] = tracking_uri
    elif tracking_uri.startswith("sqlite:///"):
        context["ui"] = run_report.UI_ADDRESS
    try:
        import mlflow

        found = mlflow.MlflowClient(tracking_uri=tracking_uri).get_experiment_by_name(experiment)
        if found is not None:
            context["experiment_id"] = str(found.experiment_id)
    except Exception as error:  # the page is still useful without the links
        log.warning("MLflow experiment %r not found at %s: %s", experiment, tracking_uri, error)
    return context


def candidate_runs(tracking_uri: str, train_run_id: str) -> dict[str, str]:
    """Each bake-off candidate's MLflow run id (the training run's children, by their ``family`` tag)."""
    if not train_run_id:
        return {}
    try:
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        experiment_id = client.get_run(train_run_id).info.experiment_id
        children = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{train_run_id}'")
    except Exception as error:  # the page is still useful without the links
        log.warning("candidate runs of %s not found at %s: %s", train_run_id, tracking_uri, error)
        return {}
    return {run.data.tags["family"]: run.info.run_id for run in children if "family" in run.data.tags}


def tuning_trials(tracking_uri: str, candidates: dict[str, str]) -> dict[str, list[dict[str, Any]]]:
    """Each tuned family's trials (``values``, ``auprc``, ``state``), read from its candidate run's nested runs."""
    if not candidates:
        return {}
    found: dict[str, list[dict[str, Any]]] = {}
    try:
        import mlflow

        client = mlflow.MlflowClient(tracking_uri=tracking_uri)
        for family, run_id in candidates.items():
            experiment_id = client.get_run(run_id).info.experiment_id
            runs = client.search_runs([experiment_id], f"tags.mlflow.parentRunId = '{run_id}' and tags.step = 'trial'")
            found[family] = [
                {
                    "values": dict(run.data.params),
                    "auprc": run.data.metrics.get("validation_auprc", float("nan")),
                    "state": run.data.tags.get("state", ""),
                }
                for run in runs
            ]
    except Exception as error:  # the page is still useful without the plot
        log.warning("tuning trials not found at %s: %s", tracking_uri, error)
    return {family: trials for family, trials in found.items() if trials}


def gather(
    inputs: ReportInputs,
    mlflow: dict[str, str],
    candidates: dict[str, str] | None = None,
    trials: dict[str, list[dict[str, Any]]] | None = None,
) -> run_report.RunFacts:
    """The run's facts from the steps' outputs (``candidates``: each candidate's MLflow run id by family;
    ``trials``: each tuned family's trials)."""
    poison = (
        json.loads(inputs.poison_table.read_text()) if inputs.poison_table and inputs.poison_table.is_file() else []
    )
    groups: dict[str, Any] = {}
    if inputs.fairness_summary and inputs.fairness_summary.is_file():
        summary = json.loads(inputs.fairness_summary.read_text())
        groups = dict((summary.get("fairness") or {}).get("by_group") or {})
    plots: list[str] = []
    for label in ("poison report", "fairness report"):
        path = inputs.reports.get(label, (None, ""))[0]
        if path is not None and path.is_file():
            plots += run_report.plots_in(path.read_text(encoding="utf-8", errors="replace"))
    return replace(
        inputs.measured,
        poison_rows=poison,
        fairness_groups=groups,
        reports={label: uri for label, (_, uri) in inputs.reports.items()},
        plots=plots,
        mlflow=mlflow,
        candidate_runs=candidates or {},
        tuning_trials=trials or {},
    )


def report_step(
    inputs: ReportInputs, html_path: Path, tracking_uri: str, experiment: str, model_name: str
) -> run_report.RunFacts:
    """Write the run's index page to ``html_path``; return the facts (the component renders the Markdown)."""
    runs = candidate_runs(tracking_uri, str(inputs.measured.model.get("mlflow_run_id", "")))
    facts = gather(
        inputs, mlflow_context(tracking_uri, experiment, model_name), runs, tuning_trials(tracking_uri, runs)
    )
    html_path.parent.mkdir(parents=True, exist_ok=True)
    html_path.write_text(run_report.render_html(facts), encoding="utf-8")
    log.debug("run report: %s", html_path)
    return facts
