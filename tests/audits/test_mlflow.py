"""The fairness and drift audits log their numbers and reports to a real MLflow store (SQLite)."""

from __future__ import annotations

import pytest

from fraud_detection import drift, fairness
from fraud_detection.train import TrainResult
from tests.audits.conftest import Windows

pytestmark = pytest.mark.slow


def test_fairness_run_has_metrics_note_and_report(windows: Windows, trained: TrainResult, tmp_path) -> None:
    from mlflow.tracking import MlflowClient

    summary = fairness.run_fairness(
        windows.frames["test"], trained.booster, trained.threshold, "age_group", tmp_path / "out"
    )
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run = MlflowClient(uri).get_run(fairness.log_to_mlflow(summary, uri, experiment="audit-test"))
    assert run.data.metrics["demographic_parity_difference"] == pytest.approx(
        summary["fairness"]["demographic_parity_difference"]
    )
    assert run.data.params["sensitive_column"] == "age_group"
    assert "fairness audited" in run.data.tags["fairness_note"]
    files = {a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id, "fairness")}
    assert {"fairness/fairness_report.html", "fairness/shap_importance.png"} <= files


def test_drift_run_has_share_flag_and_per_column_scores(windows: Windows, trained: TrainResult, tmp_path) -> None:
    from mlflow.tracking import MlflowClient

    summary = drift.run_drift(
        windows.frames["train"], windows.frames["current"], tmp_path / "out", booster=trained.booster
    )
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run = MlflowClient(uri).get_run(drift.log_to_mlflow(summary, uri, experiment="audit-test"))
    assert run.data.metrics["drift_share"] == pytest.approx(summary["drift_share"])
    assert run.data.metrics["drifted"] == float(summary["drifted"])
    assert run.data.metrics["drift_V1"] == pytest.approx(summary["columns"]["V1"]["score"])
    assert "drift_Time" not in run.data.metrics and "drift_Class" not in run.data.metrics
    files = {a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id, "drift")}
    assert {"drift/drift_report.html", "drift/drift_summary.json"} <= files
