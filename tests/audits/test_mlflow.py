"""Every audit logs its numbers and reports to a real MLflow store (SQLite) through ``tracking.log_run``."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraud_detection import tracking
from fraud_detection.audits import drift, fairness, poison
from fraud_detection.boosting import TrainResult
from fraud_detection.reports.drift import render_drift
from fraud_detection.reports.fairness import render_fairness
from fraud_detection.reports.poison import render_poison
from fraud_detection.steps import audits as steps
from tests.audits.conftest import Windows, run_poison_level

pytestmark = pytest.mark.slow


def test_poison_sweep_gets_one_parent_and_a_child_per_level(windows: Windows, tmp_path) -> None:
    from mlflow.tracking import MlflowClient

    results = [run_poison_level(windows, "none", 0.0, seed=1), run_poison_level(windows, "targeted", 0.1, seed=1)]
    sweep = poison.summarise(results)
    files = render_poison(sweep, tmp_path / "out")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    parent_id = tracking.log_run(steps.poison_record(sweep, files, "v-test"), uri, "audit-test")
    client = MlflowClient(uri)
    parent = client.get_run(parent_id)
    assert parent.info.run_name == "poison-sweep"
    assert parent.data.tags["audit"] == "poison" and parent.data.tags["data_version"] == "v-test"
    assert parent.data.metrics["clean_auprc"] == pytest.approx(results[0].attacked.auprc)
    children = client.search_runs([parent.info.experiment_id], filter_string=f"tags.mlflow.parentRunId = '{parent_id}'")
    assert sorted(c.info.run_name for c in children) == ["poison-none-0pct", "poison-targeted-10pct"]
    targeted = next(c for c in children if c.data.params["kind"] == "targeted")
    assert targeted.data.params["level"] == "0.1" and targeted.data.tags["audit"] == "poison"
    assert targeted.data.metrics["attacked_auprc"] == pytest.approx(results[1].attacked.auprc)
    assert targeted.data.metrics["flipped"] == results[1].flipped
    assert results[1].defended is not None
    assert targeted.data.metrics["defended_flips_undone"] == results[1].defended.flips_undone
    artifacts = {a.path for a in client.list_artifacts(parent_id, "poison")}
    assert artifacts == {f"poison/{p.name}" for p in files.paths()}


def test_fairness_run_has_metrics_note_and_report(windows: Windows, trained: TrainResult, tmp_path) -> None:
    from mlflow.tracking import MlflowClient

    result = fairness.run_fairness(windows.frames["test"], trained.booster, trained.threshold, "age_group")
    files = render_fairness(result, tmp_path / "out")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run = MlflowClient(uri).get_run(tracking.log_run(steps.fairness_record(result, files), uri, "audit-test"))
    assert result.fairness is not None
    assert run.info.run_name == "fairness" and run.data.tags["audit"] == "fairness"
    assert run.data.metrics["demographic_parity_difference"] == pytest.approx(
        result.fairness.demographic_parity_difference
    )
    assert run.data.params["sensitive_column"] == "age_group"
    assert "fairness audited" in run.data.tags["fairness_note"]
    files_logged = {a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id, "fairness")}
    assert {"fairness/fairness_report.html", "fairness/shap_importance.png"} <= files_logged


def test_drift_run_has_share_flag_and_per_column_scores(windows: Windows, trained: TrainResult, tmp_path) -> None:
    from mlflow.tracking import MlflowClient

    result = drift.run_drift(windows.frames["train"], windows.frames["current"], booster=trained.booster)
    files = render_drift(result, tmp_path / "out")
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    run = MlflowClient(uri).get_run(tracking.log_run(steps.drift_record(result, files), uri, "audit-test"))
    assert run.data.metrics["drift_share"] == pytest.approx(result.drift_share)
    assert run.data.metrics["drifted"] == float(result.drifted)
    assert run.data.metrics["drift_V1"] == pytest.approx(result.columns["V1"].score)
    assert run.data.params["column_threshold"] == "0.1"
    assert "drift_Time" not in run.data.metrics and "drift_Class" not in run.data.metrics
    files_logged = {a.path for a in MlflowClient(uri).list_artifacts(run.info.run_id, "drift")}
    assert {"drift/drift_report.html", "drift/drift_summary.json"} <= files_logged


def test_log_run_logs_folders_calls_back_inside_the_run_and_restores_the_uri(tmp_path: Path) -> None:
    import mlflow
    from mlflow.tracking import MlflowClient

    folder = tmp_path / "model"
    seen: list[str] = []

    def write_folder(run_id: str) -> None:
        seen.append(run_id)
        folder.mkdir()
        (folder / "metadata.json").write_text("{}")

    before = mlflow.get_tracking_uri()
    uri = f"sqlite:///{tmp_path}/mlflow.db"
    record = tracking.RunRecord(
        name="train",
        tags={"step": "train"},
        params={"max_depth": 4},
        metrics={"auprc": 0.8, "nan": float("nan"), "flag": True},
        artifacts=[folder, tmp_path / "absent.json"],
        artifact_path="serving_model",
    )
    run_id = tracking.log_run(record, uri, "audit-test", during=write_folder)
    assert seen == [run_id] and mlflow.get_tracking_uri() == before
    run = MlflowClient(uri).get_run(run_id)
    assert run.data.metrics == {"auprc": 0.8}, "NaN and non-numbers are left out"
    assert run.data.params == {"max_depth": "4"} and run.data.tags["step"] == "train"
    logged = {a.path for a in MlflowClient(uri).list_artifacts(run_id, "serving_model")}
    assert logged == {"serving_model/metadata.json"}
