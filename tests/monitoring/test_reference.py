"""The training reference recorded with the model: training writes it into the model directory and the candidate's
MLflow run; the joiner's skew reads it from a file, a model directory, or the model's run on a real ``mlflow
server`` (``models:/<name>@champion``, ``runs:/<id>``), and a feature shifted in served traffic is the one that
alerts."""

from __future__ import annotations

import json
import os
import subprocess
import sys
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_detection import data, registry, synth
from fraud_detection.monitoring import join, records, reference, shift
from fraud_detection.schema import FEATURES
from tests.reliability.conftest import MlflowServer

REPO = Path(__file__).resolve().parents[2]


def _frame(rows: int, seed: int) -> tuple[np.ndarray, np.ndarray]:
    rng = np.random.default_rng(seed)
    return rng.normal(size=(rows, len(FEATURES))), rng.beta(0.3, 3.0, rows)


def test_the_recorded_sample_is_bounded_seeded_and_holds_every_feature_and_the_score(tmp_path: Path) -> None:
    features, scores = _frame(12_000, 1)
    path = reference.record(tmp_path / "model", features, scores)
    again = reference.record(tmp_path / "again", features, scores)
    assert path.name == reference.REFERENCE_FILE and path.read_bytes() == again.read_bytes()
    sample = pd.read_parquet(path)
    assert list(sample.columns) == [*FEATURES, reference.SCORE]
    assert len(sample) == reference.SAMPLE_ROWS
    assert set(sample[reference.SCORE]) <= set(scores)
    small = pd.read_parquet(reference.record(tmp_path / "small", features[:300], scores[:300]))
    assert len(small) == 300 and np.array_equal(small[reference.SCORE].to_numpy(), scores[:300])
    with pytest.raises(ValueError, match="do not match"):
        reference.record(tmp_path / "bad", features[:, :5], scores)


def test_every_kind_of_source_gives_the_same_reference(tmp_path: Path) -> None:
    features, scores = _frame(4_000, 2)
    model_dir = tmp_path / "model"
    path = reference.record(model_dir, features, scores)
    expected = shift.Reference.of(pd.read_parquet(path))
    pd.read_parquet(path).to_csv(tmp_path / "sample.csv", index=False)
    (tmp_path / "reference.json").write_text(expected.model_dump_json())
    for source in (model_dir, path, tmp_path / "sample.csv", tmp_path / "reference.json"):
        found = reference.load(str(source))
        assert found.rows == expected.rows and found.columns.keys() == expected.columns.keys()
        for name, bins in expected.columns.items():
            assert np.allclose(found.columns[name].edges, bins.edges) and np.allclose(
                found.columns[name].shares, bins.shares
            )


def test_a_missing_reference_is_named(tmp_path: Path) -> None:
    with pytest.raises(reference.ReferenceError, match=r"no reference\.parquet"):
        reference.load(str(tmp_path))
    with pytest.raises(reference.ReferenceError, match="no such file"):
        reference.load(str(tmp_path / "none.parquet"))
    (tmp_path / "reference.txt").write_text("x")
    with pytest.raises(reference.ReferenceError, match=r"\.json, \.parquet or \.csv"):
        reference.load(str(tmp_path / "reference.txt"))
    with pytest.raises(reference.ReferenceError, match="needs a tracking URI"):
        reference.load("models:/fraud-detector@champion")


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with MlflowServer.running(tmp_path_factory.mktemp("reference-mlflow")) as server:
        yield server


def _served(model_dir: Path, rows: pd.DataFrame, moved: str, now: datetime) -> list[records.PredictionRecord]:
    """``rows`` scored by the model in the last half hour, with ``moved`` shifted by one standard deviation."""
    from fraud_detection import modeldir

    model, meta = modeldir.load_model_dir(model_dir)
    values = rows[list(FEATURES)].to_numpy(dtype=np.float64)
    values[:, list(FEATURES).index(moved)] += values[:, list(FEATURES).index(moved)].std()
    scores = model.predict_proba(values.astype(np.float32))
    return [
        records.record(
            records.Prediction(
                transaction_id=f"tx-{i}",
                model_version="1",
                features=dict(zip(FEATURES, map(float, values[i]), strict=True)),
                probability=float(scores[i]),
                decision=bool(scores[i] >= meta.threshold),
            ),
            inference_service="fraud-detector",
            namespace="fraud",
            time=now - timedelta(minutes=30) + timedelta(seconds=i),
        )
        for i in range(len(values))
    ]


@pytest.mark.slow
def test_training_records_the_reference_with_the_model_and_skew_reads_it_from_mlflow(
    tmp_path: Path, mlflow_server: MlflowServer
) -> None:
    from fraud_detection import boosting
    from fraud_detection.steps.bakeoff import select_step, train_family_step

    windows = data.time_split(data.validate(synth.generate(synth.SyntheticConfig(n_rows=20_000, seed=4)), "age_group"))
    paths = {name: tmp_path / f"{name}.parquet" for name in ("train", "validation", "test")}
    for name, path in paths.items():
        data.write_parquet(windows[name], path)
    params = boosting.TrainParams(n_rounds=30, early_stopping_rounds=10, nthread=1)
    train_family_step("xgboost", paths["train"], paths["validation"], params, tmp_path / "xgboost", "sha256:v1")
    model_dir = tmp_path / "model"
    result = select_step(
        [tmp_path / "xgboost"], paths["train"], paths["validation"], paths["test"], params, model_dir,
        mlflow_server.url, "ref", "sha256:v1",
    )  # fmt: skip

    recorded = pd.read_parquet(model_dir / reference.REFERENCE_FILE)
    x_valid, _ = data.read_xy(paths["validation"])
    assert list(recorded.columns) == [*FEATURES, reference.SCORE] and len(recorded) == len(x_valid)
    assert recorded[reference.SCORE].between(0, 1).all()
    client = registry.client(mlflow_server.url)
    logged = [a.path for a in client.list_artifacts(result.mlflow_run_id, registry.SERVING_ARTIFACT)]
    assert f"{registry.SERVING_ARTIFACT}/{reference.REFERENCE_FILE}" in logged

    name = "fraud-reference-test"
    version = registry.register(client, name, result.mlflow_run_id, {})
    registry.set_alias(client, name, registry.CHAMPION, version)
    expected = reference.load(str(model_dir))
    for source in (f"models:/{name}@champion", f"models:/{name}/{version}", f"runs:/{result.mlflow_run_id}"):
        assert reference.load(source, mlflow_server.url) == expected, source
    with pytest.raises(reference.ReferenceError, match=r"no serving_model/reference\.parquet"):
        reference.load(f"runs:/{client.create_run(client.get_experiment_by_name('ref').experiment_id).info.run_id}",
                       mlflow_server.url)  # fmt: skip

    now = datetime.now(UTC)
    store = join.JoinStore(tmp_path / "home" / "monitor" / "join.sqlite")
    store.add_records(_served(model_dir, windows["test"].head(1500), "V4", now))
    store.close()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")} | {"FRAUD_HOME": str(tmp_path / "home")}
    status = subprocess.run(
        [sys.executable, "-m", "cli.main", "monitor", "status", "--json", "--reference-uri",
         f"models:/{name}@champion", "--tracking-uri", mlflow_server.url],
        cwd=REPO, env=env, capture_output=True, text=True, timeout=120,
    )  # fmt: skip
    assert status.returncode == 0, status.stderr
    shifts = json.loads(status.stdout)["shifts"]
    assert {s["column"] for s in shifts if s["kind"] == "skew"} == {*FEATURES, reference.SCORE}
    assert [(s["kind"], s["column"]) for s in shifts if s["alert"]] == [("skew", "V4")]


@pytest.mark.slow
def test_the_promoted_version_carries_the_reference_it_was_trained_with(tmp_path: Path) -> None:
    from fraud_detection import boosting
    from fraud_detection.config import GateKnobs
    from fraud_detection.steps.bakeoff import train_step
    from fraud_detection.steps.promote import promote_step

    windows = data.time_split(data.validate(synth.generate(synth.SyntheticConfig(n_rows=20_000, seed=5)), "age_group"))
    paths = {name: tmp_path / f"{name}.parquet" for name in ("train", "validation", "test")}
    for name, path in paths.items():
        data.write_parquet(windows[name], path)
    tracking = f"sqlite:///{tmp_path / 'mlflow.db'}"
    model_dir = tmp_path / "model"
    params = boosting.TrainParams(n_rounds=30, early_stopping_rounds=10, nthread=1, families=["xgboost"])
    train_step(paths["train"], paths["validation"], paths["test"], params, model_dir, tracking, "ref", "sha256:r")
    root = tmp_path / "serving"
    result = promote_step(model_dir, paths["test"], 0.05, 1.0, GateKnobs(), tracking, "ref-promote", str(root))
    assert result.decision.promoted, result.markdown
    assert (root / "champion" / reference.REFERENCE_FILE).read_bytes() == (
        model_dir / reference.REFERENCE_FILE
    ).read_bytes()
    assert reference.load(str(root / "champion")) == reference.load(str(model_dir))


def test_the_joiner_follows_the_models_reference_and_keeps_the_last_one_when_it_cannot_read(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    from prometheus_client import CollectorRegistry

    from monitor.joiner import Joiner
    from monitor.settings import JoinerSettings

    features, scores = _frame(2_000, 3)
    model_dir = tmp_path / "champion"
    reference.record(model_dir, features, scores)
    settings = JoinerSettings(db=tmp_path / "join.sqlite", reference_uri=str(model_dir), reference_refresh_minutes=60)
    joiner = Joiner(settings, CollectorRegistry())
    first = joiner.reference
    assert first == reference.load(str(model_dir))

    reference.record(model_dir, features + 1.0, scores)  # a new champion, with its own reference
    start = joiner.reference_read_at
    assert start is not None
    joiner.load_reference(start + timedelta(minutes=59))
    assert joiner.reference == first
    joiner.load_reference(start + timedelta(minutes=61))
    second = joiner.reference
    assert second == reference.load(str(model_dir)) and second != first

    (model_dir / reference.REFERENCE_FILE).unlink()
    joiner.load_reference(start + timedelta(minutes=200))
    assert joiner.reference == second
    assert "kept the reference" in caplog.text
    joiner.store.close()

    with pytest.raises(reference.ReferenceError, match="no reference"):
        Joiner(settings, CollectorRegistry())
    override = tmp_path / "override.json"
    override.write_text(shift.Reference.of(pd.DataFrame({"V1": features[:, 0]})).model_dump_json())
    pinned = Joiner(settings.model_copy(update={"reference": override}), CollectorRegistry())
    assert pinned.reference is not None and list(pinned.reference.columns) == ["V1"]
    pinned.store.close()
