"""The Dask engine on a real 2-worker ``LocalCluster``: the local engine's errors, windows and AUPRC, and a model
the predictor serves."""

from __future__ import annotations

import re
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from fraud_detection import boosting, data, synth
from fraud_detection.config import DataKnobs
from fraud_detection.engines import dask_cluster, dask_load
from fraud_detection.schema import FEATURES, LABEL, TIME, DataValidationError
from fraud_detection.steps import bakeoff, dask_steps

pytestmark = pytest.mark.slow

AUPRC_TOLERANCE = 0.03
"""Largest test-AUPRC gap allowed between the engines on the same windows (xgboost.dask sketches the
histogram bins per worker, so the trees differ slightly)."""

FAST = boosting.TrainParams(n_rounds=60, early_stopping_rounds=20, max_depth=4, families=["xgboost"])


@pytest.fixture(scope="module")
def client() -> Iterator[object]:
    with dask_cluster.local_client(workers=2, memory_limit="1GiB") as made:
        yield made


def write_parts(frame: pd.DataFrame, folder: Path, parts: int, kind: str = "parquet") -> Path:
    """``frame`` as ``parts`` files in row order."""
    folder.mkdir(parents=True, exist_ok=True)
    for i, piece in enumerate(np.array_split(np.arange(len(frame)), parts)):
        chunk = frame.iloc[piece]
        if kind == "csv":
            chunk.to_csv(folder / f"part-{i}.csv", index=False)
        else:
            data.write_parquet(chunk, folder / f"part-{i}.parquet")
    return folder


def windows_at(root: Path) -> dict[str, str]:
    return {name: str(root / name) for name in data.SPLITS}


def local_error(frame: pd.DataFrame) -> str:
    with pytest.raises(DataValidationError) as caught:
        data.time_split(data.validate(frame, "age_group"))
    return str(caught.value)


def dask_error(client: object, folder: Path, tmp_path: Path) -> str:
    with pytest.raises(DataValidationError) as caught:
        dask_load.load_and_split(client, str(folder), "age_group", DataKnobs().fractions, windows_at(tmp_path / "w"))  # type: ignore[arg-type]
    return str(caught.value)


def _nan_and_inf(f: pd.DataFrame) -> None:
    f.loc[1500, "Amount"] = np.nan
    f.loc[2500, "Amount"] = np.inf
    f.loc[2600, "Amount"] = np.nan


def _label(f: pd.DataFrame) -> None:
    f.loc[2100, LABEL] = 3
    f.loc[200, LABEL] = 2


def _negative(f: pd.DataFrame) -> None:
    f.loc[1900, "Amount"] = -4.5
    f.loc[2900, "Amount"] = -1.0


def _sensitive(f: pd.DataFrame) -> None:
    f["age_group"] = f["age_group"].astype(object)
    f.loc[2222, "age_group"] = None


def _single_class(f: pd.DataFrame) -> None:
    f[LABEL] = 0


def _missing_column(f: pd.DataFrame) -> None:
    f.drop(columns=["V9"], inplace=True)


def _no_fraud_in_validation(f: pd.DataFrame) -> None:
    f.loc[1800:2249, LABEL] = 0


@pytest.mark.parametrize(
    "breaks",
    [_nan_and_inf, _label, _negative, _sensitive, _single_class, _missing_column, _no_fraud_in_validation],
    ids=lambda f: f.__name__.strip("_"),
)
def test_the_same_errors_as_the_local_engine(client: object, small_frame: pd.DataFrame, tmp_path: Path, breaks) -> None:  # type: ignore[no-untyped-def]
    frame = small_frame.head(3000).copy()
    frame.loc[frame.index[1850], LABEL] = 1  # a fraud in the validation window, for the cases that need one
    breaks(frame)
    expected = local_error(frame)
    assert dask_error(client, write_parts(frame, tmp_path / "in", 3), tmp_path) == expected


def test_non_numeric_values_in_a_later_csv_file_give_the_local_error(
    client: object, small_frame: pd.DataFrame, tmp_path: Path
) -> None:
    frame = small_frame.head(3000).copy()
    frame["V7"] = frame["V7"].astype(object)
    frame.loc[2345, "V7"] = "abc"
    folder = write_parts(frame, tmp_path / "in", 3, kind="csv")
    raw = pd.concat([data.read_table(str(p)) for p in sorted(folder.iterdir())], ignore_index=True)
    expected = local_error(raw)
    assert expected == "column 'V7' must be numeric: row 2346 has 'abc'"
    assert dask_error(client, folder, tmp_path) == expected


def test_empty_and_missing_inputs_are_named(client: object, tmp_path: Path) -> None:
    empty = tmp_path / "in"
    empty.mkdir()
    (empty / "a.csv").write_text("")
    assert re.fullmatch(r".*a\.csv: the file is empty", dask_error(client, empty, tmp_path))
    with pytest.raises(FileNotFoundError, match="no such file or directory"):
        dask_load.list_files(str(tmp_path / "nowhere"))


def test_windows_equal_the_local_split_with_shuffled_files_and_tied_times(
    client: object, small_frame: pd.DataFrame, tmp_path: Path
) -> None:
    frame = small_frame.sample(frac=1.0, random_state=3).reset_index(drop=True)
    frame[TIME] = (frame[TIME] // 600) * 600  # many rows share each time: the cut falls inside ties
    folder = write_parts(frame, tmp_path / "in", 5)
    result = dask_load.load_and_split(
        client, str(folder), "age_group", DataKnobs().fractions, windows_at(tmp_path / "w")
    )  # type: ignore[arg-type]
    local = data.time_split(data.validate(frame, "age_group"))
    for name in data.SPLITS:
        ours = pd.read_parquet(tmp_path / "w" / name)
        assert len(list((tmp_path / "w" / name).iterdir())) > 1  # partitioned, not one file
        pd.testing.assert_frame_equal(
            ours.sort_values([TIME, "V1"], ignore_index=True),
            local[name].sort_values([TIME, "V1"], ignore_index=True),
        )
        assert result.rows[name] == len(local[name])
        assert result.frauds[name] == int(local[name][LABEL].sum())
    assert result.version.startswith("sha256-parts:")
    again = dask_load.load_and_split(
        client, str(folder), "age_group", DataKnobs().fractions, windows_at(tmp_path / "x")
    )  # type: ignore[arg-type]
    assert again.version == result.version


def test_auprc_matches_the_local_engine_and_the_model_is_served(client: object, tmp_path: Path) -> None:
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.settings import ServingSettings
    from tests.serving.cases import GOOD, V1, wait_ready

    windows = tmp_path / "w"
    knobs = DataKnobs(synthetic_rows=80_000, synthetic_seed=5)
    loaded = dask_steps.dask_load_step(client, knobs, windows_at(windows), str(tmp_path / "scratch"))  # type: ignore[arg-type]
    train_dir = windows / "train"
    (tmp_path / "parts").mkdir()
    write_parts(pd.read_parquet(train_dir), tmp_path / "parts", 4)  # 4 partitions: both workers train
    (tmp_path / "families").mkdir()
    dask_steps.dask_xgboost_step(
        client,  # type: ignore[arg-type]
        tmp_path / "parts",
        windows / "validation",
        FAST,
        tmp_path / "families" / "dask",
        loaded.data_version,
    )
    bakeoff.train_family_step(
        "xgboost",
        tmp_path / "parts",
        windows / "validation",
        FAST,
        tmp_path / "families" / "local",
        loaded.data_version,
    )
    common = {
        "train_path": tmp_path / "parts",
        "validation_path": windows / "validation",
        "test_path": windows / "test",
        "params": FAST,
        "tracking_uri": f"sqlite:///{tmp_path}/mlflow.db",
        "experiment": "dask-test",
        "data_version": loaded.data_version,
        "oracle_label_noise": loaded.oracle_label_noise,
        "dataset": loaded.dataset,
    }
    ours = bakeoff.select_step([tmp_path / "families" / "dask"], model_dir=tmp_path / "model", **common)  # type: ignore[arg-type]
    local = bakeoff.select_step([tmp_path / "families" / "local"], model_dir=tmp_path / "local", **common)  # type: ignore[arg-type]
    assert ours.winner == local.winner == "xgboost"
    gap = abs(ours.metrics["test_auprc"] - local.metrics["test_auprc"])
    assert gap <= AUPRC_TOLERANCE, (ours.metrics["test_auprc"], local.metrics["test_auprc"])
    assert ours.metrics["test_auprc"] > ours.metrics["baseline_lr_test_auprc"]  # a real model

    app = create_app(ServingSettings(model_uri=str(tmp_path / "model")))
    with TestClient(app) as served:
        wait_ready(served)
        answer = served.post(V1, json={"instances": [GOOD]})
        assert answer.status_code == 200
        from fraud_detection.modeldir import load_model_dir

        booster, meta = load_model_dir(tmp_path / "model")
        expected = boosting.predict_proba(booster, np.array([[GOOD[f] for f in boosting.FEATURES]], dtype=np.float32))
        assert answer.json()["predictions"][0]["fraud_probability"] == pytest.approx(float(expected[0]), rel=1e-5)
        assert meta.threshold == pytest.approx(ours.threshold)


def test_negative_downsampling_keeps_every_fraud_and_stays_calibrated_on_both_engines(
    client: object, tmp_path: Path
) -> None:
    """Kept at rate r, uncompensated, a model would score legitimate traffic about 1/r times too high; with
    the weights its mean probability stays within a small factor of the full model's."""
    from fraud_detection import sampling
    from fraud_detection.engines import dask_boosting

    frame = synth.generate(synth.SyntheticConfig(n_rows=60_000, seed=9))
    windows = data.time_split(data.validate(frame, "age_group"))
    for name, window in windows.items():
        data.write_parquet(window, tmp_path / f"{name}.parquet")
    x_train, y_train = data.read_xy(tmp_path / "train.parquet")
    x_valid, y_valid = data.read_xy(tmp_path / "validation.parquet")
    full = boosting.train_booster(x_train, y_train, x_valid, y_valid, FAST, log_every=0)
    rows, weights = sampling.downsample(y_train, 0.2, seed=1)
    assert (y_train[rows] == 1).sum() == (y_train == 1).sum()
    assert 0.15 < (y_train[rows] == 0).sum() / (y_train == 0).sum() < 0.25
    local = boosting.train_booster(x_train[rows], y_train[rows], x_valid, y_valid, FAST, 0, sample_weight=weights)
    distributed, _ = dask_boosting.train_booster_dask(
        client,  # type: ignore[arg-type]
        tmp_path / "train.parquet",
        tmp_path / "validation.parquet",
        FAST,
        negative_sample_rate=0.2,
    )
    for sampled in (local, distributed):
        assert sampled.scale_pos_weight == pytest.approx(full.scale_pos_weight, rel=0.05)
        ratio = sampled.validation_scores.mean() / full.validation_scores.mean()
        assert 1 / 3 < ratio < 3, ratio


def _set_emulator(host: str) -> None:
    import os

    os.environ["STORAGE_EMULATOR_HOST"] = host


def _rows_held(prefix: str, dask_worker: Any = None) -> int:
    """Rows of the pieces a worker holds, of the tasks whose keys start with ``prefix``."""
    return sum(len(value) for key, value in dask_worker.data.items() if str(key).startswith(prefix))


def test_a_window_is_held_evenly_by_the_workers(
    client: object, small_frame: pd.DataFrame, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Parts as uneven as a real training window's (0.3M, 2.5M and 1.0M rows, scaled down), row groups of 64 rows:
    each worker holds the same rows to within one row group, and the frame is the window in file order."""
    from fraud_detection.engines import dask_boosting

    monkeypatch.setattr(data, "ROW_GROUP_ROWS", 64)
    frame = data.validate(small_frame, "age_group").head(319 + 2517 + 982).reset_index(drop=True)
    folder = tmp_path / "train"
    folder.mkdir()
    for i, (start, stop) in enumerate([(0, 319), (319, 2836), (2836, 3818)]):
        data.write_parquet(frame.iloc[start:stop], folder / f"part-{i:05d}.parquet")
    window = dask_boosting.read_window(client, folder)  # type: ignore[arg-type]
    held: dict[str, int] = client.run(_rows_held, "_read_labels-")  # type: ignore[attr-defined]
    assert len(held) == 2 and sum(held.values()) == len(frame), held
    assert max(held.values()) - min(held.values()) <= 64, held
    features, labels = window.x().compute(), window.y().compute()
    assert labels.tolist() == frame[LABEL].tolist()
    assert features.columns.tolist() == list(FEATURES) and (features.dtypes == np.float32).all()
    assert np.allclose(features["Amount"], frame["Amount"].astype(np.float32))
    assert client.run(_rows_held, "_read_features-") == held, "each piece's features sit with its labels"  # type: ignore[attr-defined]


def test_balance_gives_each_worker_the_same_rows() -> None:
    from fraud_detection.engines.dask_boosting import Piece, balance

    pieces = [Piece("p", i, rows) for i, rows in enumerate([10, 80, 30, 30, 20, 10])]
    chosen = balance(pieces, ["a", "b"])
    assert sum(p.rows for p, w in zip(pieces, chosen, strict=True) if w == "a") == 90
    assert chosen == balance(pieces, ["a", "b"]), "the same pieces go to the same workers"


def test_reads_and_writes_gcs_through_gcsfs(client: object, small_frame: pd.DataFrame, gcs_bucket: str) -> None:
    """Partitioned input on ``gs://`` (a real gcp-storage-emulator), windows written back to ``gs://``."""
    import os

    import fsspec

    client.run(_set_emulator, os.environ["STORAGE_EMULATOR_HOST"])  # type: ignore[attr-defined]
    frame = small_frame.head(12_000)
    for i, piece in enumerate(np.array_split(np.arange(len(frame)), 3)):
        with fsspec.open(f"gs://{gcs_bucket}/dask/raw/part-{i}.parquet", "wb") as handle:
            frame.iloc[piece].to_parquet(handle, index=False)
    outputs = {name: f"gs://{gcs_bucket}/dask/windows/{name}" for name in data.SPLITS}
    result = dask_load.load_and_split(
        client, f"gs://{gcs_bucket}/dask/raw", "age_group", DataKnobs().fractions, outputs
    )  # type: ignore[arg-type]
    assert result.files == 3 and sum(result.rows.values()) == 12_000
    fs = fsspec.filesystem("gs")
    written = pd.concat(pd.read_parquet(fs.open(p, "rb")) for p in sorted(fs.find(outputs["test"])))
    local = data.time_split(data.validate(frame, "age_group"))["test"]
    assert len(written) == len(local) and int(written[LABEL].sum()) == int(local[LABEL].sum())
    from fraud_detection.engines import dask_boosting

    held = dask_boosting.read_window(client, outputs["test"])  # type: ignore[arg-type]
    assert held.counts(client) == (len(local), int(local[LABEL].sum()))  # type: ignore[arg-type]
