"""Every component body runs as plain Python, without KFP: the shims, their outputs and their failure marks.

Each component's ``python_func`` is called the way KFP's executor calls it: knob inputs by name, artifacts as
``kfp.dsl`` artifact objects whose URIs are local paths. The chain runs once on small synthetic data, step by
step, into one MLflow SQLite store.
"""

from __future__ import annotations

import inspect
import json
import sys
import typing
from pathlib import Path
from typing import Any

import pytest
from kfp import dsl
from kfp.dsl.types import type_annotations

from components.deploy import deploy_model
from components.drift import drift_check
from components.fairness import fairness_audit
from components.load import load_data
from components.outcome import StepOutcome, read_outcomes
from components.poison import poison_collect, poison_level
from components.promote import evaluate_and_promote
from components.train import select_model, train_family
from fraud_detection import config, modeldir

SMALL = {
    "synthetic_rows": 40_000,
    "synthetic_seed": 7,
    "n_rounds": 40,
    "early_stopping_rounds": 10,
    "mlp_max_epochs": 4,
}


def call(component: Any, workdir: Path, knobs: dict[str, Any], **given: Any) -> tuple[Any, dict[str, Any]]:
    """Call a component's Python function: knobs by name, ``given`` inputs, fresh output artifacts under
    ``workdir/<component>/``. Returns what it returned and its output artifacts by name."""
    values = {**config.defaults(), **knobs}
    kwargs: dict[str, Any] = {}
    outputs: dict[str, Any] = {}
    folder = workdir / component.name
    folder.mkdir(parents=True, exist_ok=True)
    for name, parameter in inspect.signature(component.python_func).parameters.items():
        if name in given:
            kwargs[name] = given[name]
        elif type_annotations.is_artifact_wrapped_in_Output(parameter.annotation):
            artifact_type = typing.get_args(parameter.annotation)[0]
            outputs[name] = kwargs[name] = artifact_type(name=name, uri=str(folder / name))
        else:
            kwargs[name] = values[name]
    return component.python_func(**kwargs), outputs


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """load -> train families -> select -> poison -> fairness -> drift -> promote -> deploy, as plain calls."""
    work = tmp_path_factory.mktemp("components")
    knobs = {
        **SMALL,
        "poison_levels": [0.0, 0.05],
        "min_robust_fraction": 0.0,  # 40k rows: 5 % flipped labels cost more AUPRC than the default bound allows
        "mlflow_tracking_uri": f"sqlite:///{work / 'mlflow.db'}",
        "serving_root": str(work / "serving"),
        "deploy_target": "local",
    }
    out: dict[str, Any] = {"work": work, "knobs": knobs}
    out["load"] = call(load_data, work, knobs)
    (version, noise, oracle_auprc), load = out["load"]
    windows = {f"{name}_data": load[f"{name}_data"] for name in ("train", "validation", "test")}
    out["families"] = {
        family: call(
            train_family,
            work / family,
            knobs,
            family=family,
            train_data=windows["train_data"],
            validation_data=windows["validation_data"],
            data_version=version,
        )
        for family in config.TrainKnobs().families
    }
    out["train"] = call(
        select_model,
        work,
        knobs,
        **windows,
        family_models=[outputs["model"] for _, outputs in out["families"].values()],
        data_version=version,
        oracle_label_noise=noise,
        oracle_test_auprc=oracle_auprc,
    )
    model = out["train"][1]["model"]
    levels = [
        call(
            poison_level,
            work / f"level-{level}",
            knobs,
            **windows,
            model=model,
            level=level,
        )[0]
        for level in knobs["poison_levels"]
    ]
    out["poison"] = call(poison_collect, work, knobs, results=levels, data_version=version)
    out["fairness"] = call(fairness_audit, work, knobs, test_data=windows["test_data"], model=model)
    out["drift"] = call(
        drift_check, work, knobs, reference_data=windows["train_data"], current_data=load["current_data"], model=model
    )
    out["promote"] = call(
        evaluate_and_promote,
        work,
        knobs,
        model=model,
        test_data=windows["test_data"],
        equalized_odds_difference=out["fairness"][0].equalized_odds_difference,
        robust_fraction=out["poison"][0].robust_fraction,
    )
    out["deploy"] = call(deploy_model, work, knobs, decision=out["promote"][1]["decision"])
    return out


def test_load_writes_four_windows_and_versions_them(chain: dict[str, Any]) -> None:
    (version, noise, oracle_auprc), outputs = chain["load"]
    assert version.startswith("sha256:") and noise == pytest.approx(0.05)
    assert oracle_auprc == -1, "the public generator's best AUPRC is measured by select, from its label noise"
    rows = {name: outputs[f"{name}_data"].metadata["rows"] for name in ("train", "validation", "test", "current")}
    assert sum(rows.values()) == SMALL["synthetic_rows"] and rows["train"] == 24_000
    assert outputs["summary"].metadata["test_frauds"] > 0
    assert all(Path(outputs[f"{n}_data"].path).is_file() for n in rows)


def test_each_family_writes_its_model_directory_in_its_own_format(chain: dict[str, Any]) -> None:
    for family, (validation_auprc, outputs) in chain["families"].items():
        metadata = modeldir.read_metadata(Path(outputs["model"].path))
        assert metadata.family == family and metadata.format_version == modeldir.FORMAT_VERSION
        assert metadata.files == [{"xgboost": "model.ubj", "mlp": "mlp.npz"}[family]]
        assert outputs["metrics"].metadata["validation_auprc"] == validation_auprc > 0.1


def test_select_writes_the_winner_and_reports_every_candidate(chain: dict[str, Any]) -> None:
    (run_id, threshold, auprc, winner), outputs = chain["train"]
    _, metadata = modeldir.load_model_dir(Path(outputs["model"].path))
    assert metadata.family == winner and metadata.mlflow_run_id == run_id == outputs["model"].metadata["mlflow_run_id"]
    assert metadata.threshold == threshold and metadata.params["max_depth"] == config.TrainKnobs().max_depth
    metrics = outputs["metrics"].metadata
    assert metrics["test_auprc"] == auprc > 0.5
    candidates = outputs["bakeoff"].metadata["candidates"]
    assert [c["family"] for c in candidates] == ["xgboost", "mlp", "blend"]
    best = max(candidates, key=lambda c: c["validation_auprc"])
    assert best["winner"] and best["family"] == winner
    assert all(metrics[f"{c['family']}_test_auprc"] == c["test_auprc"] for c in candidates)
    assert "| blend |" in Path(outputs["bakeoff"].path).read_text()
    assert outputs["classification"].metadata["confusionMatrix"]["rows"]


def test_the_audits_report_and_gate_values(chain: dict[str, Any]) -> None:
    poison, poison_outputs = chain["poison"]
    assert 0 < poison.robust_auprc <= 1 and poison.robust_fraction > 0
    assert Path(poison_outputs["report"].path).read_text().lstrip().startswith("<!")
    assert {row["level_pct"] for row in json.loads(Path(poison_outputs["table"].path).read_text())} == {0, 5}
    fairness, fairness_outputs = chain["fairness"]
    assert 0 <= fairness.equalized_odds_difference < 1
    assert Path(fairness_outputs["report"].path).stat().st_size > 0
    drift, drift_outputs = chain["drift"]
    assert 0 <= drift.drift_share <= 1 and isinstance(drift.drifted, bool)
    assert "drift_share" in drift_outputs["metrics"].metadata


def test_promote_and_deploy_serve_the_first_champion(chain: dict[str, Any]) -> None:
    promoted, outputs = chain["promote"]
    assert promoted is True
    decision = outputs["decision"]
    assert "PROMOTED" in Path(decision.path).read_text()
    assert outputs["metrics"].metadata["promoted"] == 1.0
    served = chain["deploy"][0]
    assert served == decision.metadata["serving_uri"] == str(chain["work"] / "serving" / "v1")
    assert modeldir.read_metadata(chain["work"] / "serving" / "champion").model_version == "1"


def failure_mark(folder: Path, body: Any) -> str:
    """Run ``body`` the way KFP's executor runs a component (its executor input on the command line) and return
    the failed step's record as ``step: reason``."""
    outcome = failed_outcome(folder, body)
    assert outcome.failure is not None
    return f"{outcome.step}: {outcome.failure.reason}"


def failed_outcome(folder: Path, body: Any) -> StepOutcome:
    task = folder / "task"
    executor_input = json.dumps({"outputs": {"outputFile": str(task / "executor_output.json")}})
    with pytest.MonkeyPatch.context() as patch:
        patch.setattr(sys, "argv", ["executor_main", "--executor_input", executor_input])
        with pytest.raises(SystemExit) as exited:
            body()
    assert exited.value.code == 1
    (outcome,) = read_outcomes(task)
    return outcome


def test_load_marks_bad_parameters_before_reading_anything(tmp_path: Path) -> None:
    reason = failure_mark(tmp_path, lambda: call(load_data, tmp_path, {**SMALL, "poison_levels": [0.0, 0.1]}))
    assert reason.startswith("load: invalid pipeline parameters:")
    assert not any((tmp_path / "load-data").iterdir())


def test_load_marks_bad_data(tmp_path: Path) -> None:
    (tmp_path / "bad.csv").write_text("Time,V1\n1,2\n")
    reason = failure_mark(tmp_path, lambda: call(load_data, tmp_path, {"data_uri": str(tmp_path / "bad.csv")}))
    assert reason.startswith("load: missing columns: V2")


def test_train_marks_a_window_without_fraud(chain: dict[str, Any], tmp_path: Path) -> None:
    import pandas as pd

    _, load = chain["load"]
    frame = pd.read_parquet(load["validation_data"].path)
    frame["Class"] = 0
    no_fraud = tmp_path / "validation.parquet"
    frame.to_parquet(no_fraud)
    for family in config.TrainKnobs().families:
        reason = failure_mark(
            tmp_path / family,
            lambda family=family: call(
                train_family,
                tmp_path / family,
                chain["knobs"],
                family=family,
                train_data=load["train_data"],
                validation_data=dsl.Dataset(name="validation_data", uri=str(no_fraud)),
                data_version="sha256:test",
            ),
        )
        assert reason == (
            f"train {family}: validation window has no fraud rows: early stopping and the threshold need some"
        )


def test_deploy_marks_a_decision_without_export(tmp_path: Path) -> None:
    decision = dsl.Markdown(name="decision", uri=str(tmp_path / "decision"))
    knobs = {"deploy_target": "local", "serving_root": str(tmp_path / "serving")}  # not the default gs:// root
    reason = failure_mark(tmp_path, lambda: call(deploy_model, tmp_path, knobs, decision=decision))
    assert reason == "deploy: the promotion decision carries no serving_uri: nothing to deploy"


def test_an_unexpected_error_is_marked_with_its_type(tmp_path: Path) -> None:
    model = dsl.Model(name="model", uri=str(tmp_path / "no-model"))
    test_data = dsl.Dataset(name="test_data", uri=str(tmp_path / "no-test.parquet"))
    outcome = failed_outcome(
        tmp_path,
        lambda: call(
            evaluate_and_promote,
            tmp_path,
            {"mlflow_tracking_uri": f"sqlite:///{tmp_path / 'mlflow.db'}"},
            model=model,
            test_data=test_data,
            equalized_odds_difference=-1.0,
            robust_fraction=-1.0,
        ),
    )
    assert outcome.step == "evaluate-and-promote" and outcome.failure is not None
    assert outcome.failure.error_type and outcome.failure.reason
