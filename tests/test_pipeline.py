"""The pipeline: committed YAML is a fresh compile, the CLI exposes every parameter, and real local runs."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from fraud_detection import modeldir
from pipelines.compile import COMPILED_PATH, compile_pipeline
from pipelines.local import pipeline_parameters

ROOT = Path(__file__).resolve().parents[1]


def fraud(*args: str, home: Path, timeout: int = 600) -> subprocess.CompletedProcess[str]:
    env = {**os.environ, "FRAUD_HOME": str(home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    return subprocess.run(
        [sys.executable, "-m", "fraud_detection.cli", *args],
        cwd=ROOT,
        env=env,
        capture_output=True,
        text=True,
        timeout=timeout,
    )


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
    for parameter in pipeline_parameters():
        assert inputs[parameter.name]["defaultValue"] == parameter.default


def test_run_help_lists_every_parameter_with_its_default(tmp_path):
    result = fraud("run", "--help", home=tmp_path)
    assert result.returncode == 0, result.stderr
    text = " ".join(result.stdout.split())
    for parameter in pipeline_parameters():
        assert f"--{parameter.name.replace('_', '-')}" in text
        if parameter.name != "mlflow_tracking_uri":
            assert f"(default: {parameter.default})" in text, parameter.name


def test_data_generate_writes_a_valid_file(tmp_path):
    out = tmp_path / "synthetic.parquet"
    result = fraud("data", "generate", "--rows", "3000", "--output", str(out), home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert "wrote 3,000 rows" in result.stdout
    from fraud_detection import data

    assert len(data.load_dataset(str(out), "age_group").frame) == 3000


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
def test_local_run_on_a_users_csv(tmp_path):
    csv = tmp_path / "creditcard.csv"
    gen = fraud("data", "generate", "--rows", "40000", "--seed", "3", "--output", str(csv), home=tmp_path)
    assert gen.returncode == 0, gen.stderr
    result = fraud("run", "--data-uri", str(csv), "--n-rounds", "60", home=tmp_path)
    assert result.returncode == 0, result.stdout[-3000:] + result.stderr[-3000:]
    out = result.stdout
    assert "best possible AUPRC n/a (real data" in out
    assert "logistic regression baseline AUPRC" in out
    model_line = next(line for line in out.splitlines() if "model directory" in line)
    model_dir = Path(model_line.split()[-1])
    booster, metadata = modeldir.load_model_dir(model_dir)
    assert booster.num_features() == 29 and 0 < metadata.threshold < 1
    runs = mlflow_runs(tmp_path)
    assert [r.info.run_id for r in runs] == [metadata.mlflow_run_id]
    assert runs[0].data.params["data_version"] == metadata.data_version


@pytest.mark.slow
def test_bad_data_stops_at_load_and_logs_nothing(tmp_path):
    from fraud_detection import synth

    frame = synth.generate(synth.SyntheticConfig(n_rows=5000))
    frame.loc[41, "Amount"] = -12.5
    csv = tmp_path / "bad.csv"
    frame.to_csv(csv, index=False)
    result = fraud("run", "--data-uri", str(csv), home=tmp_path)
    assert result.returncode == 1
    assert "load: column 'Amount' has 1 negative value(s) (first at row 42: -12.5)" in result.stderr
    assert "Nothing was registered or exported." in result.stderr
    runs_on_disk = list((tmp_path / "pipeline_root").iterdir())
    assert runs_on_disk and not any((run / "train-model").exists() for run in runs_on_disk)
    assert mlflow_runs(tmp_path) == []
