"""The pipeline: committed YAML is a fresh compile, the CLI exposes every parameter, and real local runs."""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import numpy as np
import pytest
import yaml

from cli.main import LOCAL_DEFAULTS
from fraud_detection import modeldir
from fraud_detection.config import pipeline_knobs
from pipelines.compile import COMPILED_PATH, compile_pipeline
from tests.conftest import run_fraud


def fraud(*args: str, home: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    """``fraud *args`` with ``home`` as FRAUD_HOME and no tracking server set."""
    env = {**os.environ, "FRAUD_HOME": str(home), "COLUMNS": "1000"}
    env.pop("MLFLOW_TRACKING_URI", None)
    return run_fraud(*args, env=env, timeout=timeout)


def test_committed_yaml_equals_a_fresh_compile(tmp_path):
    fresh = compile_pipeline(tmp_path / "fresh.yaml")
    assert fresh.read_text() == COMPILED_PATH.read_text(), "run `make compile` and commit pipelines/fraud_pipeline.yaml"


def test_compile_can_swap_the_components_image(tmp_path):
    image = "europe-docker.pkg.dev/acme/fraud/components@sha256:" + "a" * 64
    text = compile_pipeline(tmp_path / "p.yaml", components_image=image).read_text()
    spec = yaml.safe_load(text)
    images = {e["container"]["image"] for e in spec["deploymentSpec"]["executors"].values()}
    assert images == {image}


def test_compiled_pipeline_has_every_parameter_with_its_default():
    spec = yaml.safe_load(COMPILED_PATH.read_text())
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    for parameter in pipeline_knobs():
        assert inputs[parameter.name]["defaultValue"] == parameter.default


def test_compiled_yaml_holds_the_full_dag_with_a_conditional_deploy():
    spec = yaml.safe_load(COMPILED_PATH.read_text())
    root = spec["root"]["dag"]["tasks"]
    assert {
        "load-data",
        "select-model",
        "poison-collect",
        "fairness-audit",
        "drift-check",
        "evaluate-and-promote",
    } <= set(root)
    loops = {
        task["parameterIterator"]["items"]["inputParameter"].removeprefix("pipelinechannel--"): set(
            spec["components"][task["componentRef"]["name"]]["dag"]["tasks"]
        )
        for name, task in root.items()
        if name.startswith("for-loop")
    }
    assert loops == {"families": {"train-family"}, "poison_levels": {"poison-level"}}
    select_inputs = root["select-model"]["inputs"]["artifacts"]["family_models"]
    assert select_inputs["taskOutputArtifact"]["producerTask"].startswith("for-loop")
    condition = next(t for name, t in root.items() if name.startswith("condition"))
    assert "evaluate-and-promote-Output" in condition["triggerPolicy"]["condition"]
    assert condition["dependentTasks"] == ["evaluate-and-promote"]
    inner = spec["components"][condition["componentRef"]["name"]]["dag"]["tasks"]
    assert set(inner) == {"deploy-model"}
    promote_inputs = root["evaluate-and-promote"]["inputs"]["parameters"]
    assert promote_inputs["equalized_odds_difference"]["taskOutputParameter"]["producerTask"] == "fairness-audit"
    assert promote_inputs["robust_fraction"]["taskOutputParameter"]["producerTask"] == "poison-collect"


def test_run_help_lists_every_parameter_with_its_default(tmp_path):
    result = fraud("run", "--help", home=tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for parameter in pipeline_knobs():
        assert f"--{parameter.name.replace('_', '-')}" in text
        if parameter.name in LOCAL_DEFAULTS:
            assert f"Compiled default: {parameter.default}; fraud run uses" in text, parameter.name
        elif parameter.type is list:  # as the option takes it: comma-separated
            assert f"(default: {','.join(map(str, parameter.default))})" in text, parameter.name
        else:
            assert f"(default: {parameter.default})" in text, parameter.name


@pytest.mark.parametrize(
    "option, value, message",
    [
        ("--poison-levels", "0,abc", "poison_levels item must be a number, got 'abc'"),
        ("--poison-kinds", "random,2", "poison_kinds item must be one of random, targeted, got '2'"),
        ("--poison-levels", "[0.1", "poison_levels must be a JSON list"),
        ("--synthetic-rows", "many", "synthetic_rows must be a whole number, got 'many'"),
    ],
)
def test_run_rejects_bad_options_before_running(tmp_path, option, value, message):
    result = fraud("run", option, value, home=tmp_path)
    assert result.returncode == 2
    assert message in result.stderr
    assert not (tmp_path / "pipeline_root").exists()


@pytest.mark.parametrize(
    "options, message",
    [
        (
            ["--poison-levels", "0,0.1"],
            "robustness_level 0.05 must be one of the non-zero poison_levels [0.1]: the robustness gate is measured",
        ),
        (["--poison-levels", "0.05"], "poison_levels must include 0 (the clean baseline"),
        (
            ["--train-fraction", "0.7", "--validation-fraction", "0.2"],
            "train_fraction, validation_fraction and test_fraction must be positive and leave room for the current",
        ),
    ],
)
def test_run_refuses_parameters_that_disagree_before_any_task(tmp_path, options, message):
    result = fraud("run", *options, home=tmp_path)
    assert result.returncode == 2, result.stdout[-2000:]
    assert message in result.stderr
    assert not (tmp_path / "pipeline_root").exists() and not (tmp_path / "mlflow").exists()


def test_run_expands_a_quoted_home_directory(tmp_path):
    # `make run ARGS="--data-uri ~/x.csv"` hands fraud a literal "~": it must name the user's home, not ./~
    env_home = tmp_path / "home"
    env_home.mkdir()
    (env_home / "x.csv").write_text("Time,V1\n1,2\n")
    env = {**os.environ, "FRAUD_HOME": str(tmp_path / "state"), "HOME": str(env_home)}
    result = run_fraud("run", "--data-uri", "~/x.csv", env=env, timeout=300)
    assert result.returncode == 1
    assert "load: missing columns: V2" in result.stderr


def test_data_generate_writes_a_valid_file(tmp_path):
    out = tmp_path / "synthetic.parquet"
    result = fraud("data", "generate", "--rows", "3000", "--output", str(out), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote 3,000 rows" in result.stdout
    from fraud_detection import data

    assert len(data.load_dataset(str(out), "age_group").frame) == 3000


def test_data_generate_writes_time_ordered_parts(tmp_path):
    out = tmp_path / "parts"
    result = fraud("data", "generate", "--rows", "6000", "--parts", "3", "--output", str(out), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote 6,000 rows" in result.stdout and "in 3 Parquet files" in result.stdout
    import pandas as pd

    from fraud_detection import data

    parts = [pd.read_parquet(p) for p in sorted(out.glob("part-*.parquet"))]
    assert len(parts) == 3 and all(len(p) > 1000 for p in parts)
    whole = pd.concat(parts, ignore_index=True)
    assert whole["Time"].is_monotonic_increasing  # slices of time, in file order
    assert len(data.validate(whole, "age_group")) == 6000
    assert (
        fraud("data", "generate", "--parts", "2", "--output", str(tmp_path / "x.parquet"), home=tmp_path).returncode
        == 2
    )


def test_data_generate_rejects_unknown_format(tmp_path):
    result = fraud("data", "generate", "--rows", "100", "--output", str(tmp_path / "x.json"), home=tmp_path)
    assert result.returncode == 2
    assert "use a .csv, .csv.gz or .parquet file name" in result.stderr


def mlflow_runs(home: Path) -> list:
    import mlflow

    db = home / "mlflow" / "mlflow.db"
    if not db.exists():
        return []
    client = mlflow.MlflowClient(f"sqlite:///{db}")
    experiment = client.get_experiment_by_name("fraud-detection")
    return [] if experiment is None else client.search_runs([experiment.experiment_id])


@pytest.mark.slow
@pytest.mark.timeout(1500)  # two whole runs, each training two families: minutes on a shared 2-core machine
def test_local_run_on_a_users_csv(tmp_path):
    csv = tmp_path / "creditcard.csv"
    gen = fraud("data", "generate", "--rows", "40000", "--seed", "3", "--output", str(csv), home=tmp_path)
    assert gen.returncode == 0, gen.stderr
    # 40k rows leave a handful of test frauds per age group: too few to compare recall (one fraud in a
    # group gives recall 0 or 1), so the fairness gate compares false-positive rates only, at its default bound.
    quick = [*("--data-uri", str(csv), "--n-rounds", "60", "--poison-levels", "0,0.05", "--poison-kinds", "targeted")]
    step_summary = tmp_path / "step_summary.md"  # what CI passes as $GITHUB_STEP_SUMMARY
    result = fraud("run", *quick, "--summary-to", str(step_summary), home=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    markdown = step_summary.read_text()
    assert markdown.startswith("# Fraud pipeline run: PROMOTED")
    assert "| gate | value | bound | result | note |" in markdown
    for gate in ("quality", "quality_floor", "fairness", "robustness"):
        assert re.search(rf"^\| {gate} \| [0-9.]+ \| .* \| pass \|", markdown, flags=re.M), gate
    out = result.stdout
    assert len((out + result.stderr).splitlines()) <= 60, "output that is not a terminal stays short"
    assert "Promotion: PROMOTED - first champion" in out
    assert re.search(r"(done: | \| )deploy-model \d", out), "the conditional deploy step did not run"
    assert "Executing task" not in out, "kfp.local's own output goes to the run's log file"
    for gate in ("quality", "quality_floor", "fairness", "robustness"):
        assert re.search(rf"^  pass  {gate} ", out, flags=re.M), gate
    assert re.search(r"^  targeted +5% ", out, flags=re.M)
    assert "equalised-odds difference" in out and re.search(r"(no drift|DRIFTED): \d+ of 29 features", out)
    assert "recall not compared: every group had fewer than 10 test frauds" in out
    assert re.search(r"^  60\+ +recall ", out, flags=re.M), "groups print by their own names"
    assert re.search(r"^  pass  fairness +0\.0\d+ ", out, flags=re.M), "measured on FPR, not skipped"
    assert "best possible AUPRC n/a (real data" in out
    assert "logistic regression baseline AUPRC" in out
    model_line = next(line for line in out.splitlines() if "model directory" in line)
    model_dir = Path(model_line.split()[-1])
    model, metadata = modeldir.load_model_dir(model_dir)
    assert model.predict_proba(np.zeros((2, 29), dtype=np.float32)).shape == (2,) and 0 < metadata.threshold < 1
    assert re.search(r"^  xgboost\*? [\d.]+/[\d.]+ \| mlp\*? [\d.]+/[\d.]+ \| blend\*? ", out, flags=re.M)
    assert f"Model: {metadata.family} (test window)" in out
    runs = mlflow_runs(tmp_path)
    train_runs = [r for r in runs if r.data.tags.get("step") == "train"]
    assert [r.info.run_id for r in train_runs] == [metadata.mlflow_run_id]
    children = [r for r in runs if r.data.tags.get("mlflow.parentRunId") == metadata.mlflow_run_id]
    assert sorted(r.data.tags["family"] for r in children) == ["blend", "mlp", "xgboost"]
    assert [r.data.tags["family"] for r in children if r.data.tags["winner"] == "true"] == [metadata.family]
    assert train_runs[0].data.params["data_version"] == metadata.data_version
    _, served = modeldir.load_model_dir(tmp_path / "serving" / "champion")
    assert served.model_version == "1" and served.mlflow_run_id == metadata.mlflow_run_id

    again = fraud("run", *quick, home=tmp_path)
    assert again.returncode == 0, again.stderr[-3000:]
    assert "Promotion: NOT PROMOTED - candidate is byte-identical to champion version 1" in again.stdout
    assert "deploy-model" not in again.stdout
    assert modeldir.read_metadata(tmp_path / "serving" / "champion").model_version == "1"


@pytest.mark.slow
def test_a_users_csv_with_shuffled_labels_is_not_promoted(tmp_path):
    import pandas as pd

    csv = tmp_path / "creditcard.csv"
    gen = fraud("data", "generate", "--rows", "40000", "--seed", "3", "--output", str(csv), home=tmp_path)
    assert gen.returncode == 0, gen.stderr
    frame = pd.read_csv(csv)
    frame["Class"] = np.random.default_rng(0).permutation(frame["Class"].to_numpy())
    frame.to_csv(csv, index=False)
    # one family: the floor compares the winner with the baseline, whichever family wins
    quick = [*("--data-uri", str(csv), "--n-rounds", "60", "--poison-levels", "0,0.05", "--poison-kinds", "targeted")]
    result = fraud("run", *quick, "--families", "xgboost", home=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "Promotion: NOT PROMOTED - blocked by gate(s): quality_floor" in out
    assert re.search(r"^  FAIL  quality_floor .*shuffled or misaligned labels", out, flags=re.M)
    assert not (tmp_path / "serving" / "champion").exists()


@pytest.mark.slow
def test_bad_data_stops_at_load_and_logs_nothing(tmp_path):
    from fraud_detection import synth

    frame = synth.generate(synth.SyntheticConfig(n_rows=5000))
    frame.loc[41, "Amount"] = -12.5
    csv = tmp_path / "bad.csv"
    frame.to_csv(csv, index=False)
    result = fraud("run", "--data-uri", str(csv), home=tmp_path)
    assert result.returncode == 1
    # README's three lines: the step and its reason once (read from the step's record), nothing from the log
    assert re.fullmatch(
        r"\nPipeline FAILED after \d+\.\d s\.\n"
        r"  load: column 'Amount' has 1 negative value\(s\) \(first at row 42: -12\.5\)\n"
        r"Nothing was registered or exported\.\n",
        result.stderr,
    ), result.stderr
    runs_on_disk = list((tmp_path / "pipeline_root").iterdir())
    assert runs_on_disk and not any(
        (run / task).exists() for run in runs_on_disk for task in ("train-family", "select-model")
    )
    assert mlflow_runs(tmp_path) == []
