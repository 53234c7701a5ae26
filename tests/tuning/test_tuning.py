"""The tuner: search spaces as data, the local Optuna search on validation only, and what a tuned family records."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pytest

from fraud_detection import data, modeldir, synth
from fraud_detection.boosting import TrainParams
from fraud_detection.families.fit import mlp, xgboost
from fraud_detection.families.fit.base import FitData
from fraud_detection.steps.bakeoff import train_family_step
from fraud_detection.tuning.space import Parameter
from fraud_detection.tuning.study import COMPLETE, read_trials, tune
from tests.conftest import write_windows


@pytest.fixture(scope="module")
def windows(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    folder = tmp_path_factory.mktemp("windows")
    config = synth.SyntheticConfig(n_rows=60_000, setting="rotated")
    return write_windows(config, folder)


def _fit_data(windows: dict[str, Path]) -> FitData:
    x_train, y_train = data.read_xy(windows["train"])
    x_valid, y_valid = data.read_xy(windows["validation"])
    return FitData(x_train, y_train, x_valid, y_valid)


def test_a_layer_width_is_drawn_only_when_the_network_has_that_layer() -> None:
    one_layer = mlp.SEARCH_SPACE.parse(
        {
            "mlp_layers": "1",
            "mlp_width_1": "32",
            "mlp_width_2": "16",
            "mlp_alpha": "0.001",
            "mlp_learning_rate": "0.01",
            "mlp_batch_size": "512",
        }
    )
    assert "mlp_width_2" not in one_layer
    params = mlp.TUNING.apply(TrainParams(), one_layer)
    assert params.mlp_hidden_units == [32] and params.mlp_batch_size == 512


def test_a_value_outside_its_range_or_not_whole_is_refused_by_name() -> None:
    with pytest.raises(ValueError, match="max_depth"):
        xgboost.SEARCH_SPACE.parameters[0].parse("11")
    with pytest.raises(ValueError, match="whole"):
        xgboost.SEARCH_SPACE.parameters[0].parse("4.5")
    with pytest.raises(ValueError, match="needs low < high"):
        Parameter(name="x", kind="float", low=0.0, high=1.0, log=True)


def test_the_first_trial_reproduces_the_fixed_settings() -> None:
    for tunable in (xgboost.TUNING, mlp.TUNING):
        params = TrainParams()
        assert tunable.apply(params, tunable.current(params)) == params


def test_the_search_repeats_for_a_seed_and_never_reads_the_test_window(windows: dict[str, Path]) -> None:
    fit_data = _fit_data(windows)
    first = tune("xgboost", fit_data, TrainParams(n_rounds=60), trials=4, jobs=1)
    again = tune("xgboost", fit_data, TrainParams(n_rounds=60), trials=4, jobs=1)
    assert [t.values for t in first.trials] == [t.values for t in again.trials]
    assert first.best_auprc == again.best_auprc
    assert first.trials[0].values == xgboost.TUNING.current(TrainParams(n_rounds=60))
    assert first.best_auprc >= first.trials[0].auprc  # the fixed settings are the floor on validation


def test_hopeless_trials_are_pruned(windows: dict[str, Path]) -> None:
    result = tune("xgboost", _fit_data(windows), TrainParams(n_rounds=120), trials=12, jobs=2)
    states = [t.state for t in result.trials]
    assert "pruned" in states and states.count(COMPLETE) >= 3, states


def test_a_tuned_family_records_its_best_values_and_trials_beside_the_model(
    windows: dict[str, Path], tmp_path: Path
) -> None:
    params = TrainParams(n_rounds=60, tune_trials=3)
    metrics = train_family_step("xgboost", windows["train"], windows["validation"], params, tmp_path, "v1")
    meta = modeldir.read_metadata(tmp_path)
    trials = read_trials(tmp_path)
    assert len(trials) == 3 and metrics["tune_trials"] == 3
    best = max((t for t in trials if t.state == COMPLETE), key=lambda t: t.auprc)
    assert meta.tuned_params == best.values
    assert meta.metrics["tuned_max_depth"] == best.values["max_depth"]
    assert np.isclose(metrics["validation_auprc"], best.auprc)


def test_without_a_budget_the_step_is_todays_training(windows: dict[str, Path], tmp_path: Path) -> None:
    metrics = train_family_step(
        "xgboost", windows["train"], windows["validation"], TrainParams(n_rounds=60), tmp_path, "v1"
    )
    assert "tune_trials" not in metrics and read_trials(tmp_path) == []
    assert modeldir.read_metadata(tmp_path).tuned_params == {}


def test_each_trial_is_a_nested_run_under_its_family_and_the_report_draws_them(
    windows: dict[str, Path], tmp_path: Path
) -> None:
    import mlflow

    from fraud_detection.reports.run import RunFacts, render_html
    from fraud_detection.steps.bakeoff import train_step
    from fraud_detection.steps.report import candidate_runs, tuning_trials
    from pipelines.summary import _tuning_lines

    uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    params = TrainParams(n_rounds=40, mlp_max_epochs=3, tune_trials=3)
    result = train_step(
        windows["train"], windows["validation"], windows["test"], params, tmp_path / "model", uri, "tuning", "v1"
    )
    assert result.metrics["xgboost_tune_trials"] == 3 and result.metrics["mlp_tune_trials"] == 3
    candidates = candidate_runs(uri, result.mlflow_run_id)
    trials = tuning_trials(uri, candidates)
    assert sorted(trials) == ["mlp", "xgboost"] and all(len(t) == 3 for t in trials.values())
    run = mlflow.MlflowClient(tracking_uri=uri).get_run(candidates["xgboost"])
    assert run.data.metrics["tune_trials"] == 3
    summary = "\n".join(_tuning_lines(result.metrics))
    assert "xgboost: 3 trials" in summary and "mlp: 3 trials" in summary and "max_depth=" in summary
    page = render_html(RunFacts("synthetic", "v1", {}, result.metrics, {}, tuning_trials=trials))
    assert "tuning trials, parallel coordinates" in page and "data:image/png;base64," in page


def test_a_katib_trial_trains_the_family_and_prints_the_objective_katib_reads(
    windows: dict[str, Path], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    import re

    from fraud_detection.tuning import trial

    args = [
        "--family=xgboost",
        f"--train-data={windows['train']}",
        f"--validation-data={windows['validation']}",
        f"--model-dir={tmp_path}",
        "--max_depth=3",
        "--learning_rate=0.2",
        "--min_child_weight=1",
        "--subsample=0.9",
        "--colsample_bytree=0.7",
    ]
    assert trial.main(args) == 0
    last = capsys.readouterr().out.strip().splitlines()[-1]
    # Katib's StdOut collector's default filter
    found = re.fullmatch(r"([\w|-]+)\s*=\s*([+-]?\d*(\.\d+)?([Ee][+-]?\d+)?)", last)
    assert found and found.group(1) == "validation-auprc"
    assert float(found.group(2)) == pytest.approx(
        modeldir.read_metadata(tmp_path).metrics["validation_auprc"], abs=1e-6
    )
    assert modeldir.read_metadata(tmp_path).params["max_depth"] == 3
