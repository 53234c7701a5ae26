"""The predictor serves every model family the bake-off can promote: V1, V2, flat bodies, explain and bad input,
for the MLP and the blend as for XGBoost (whose full suite is ``test_protocols.py``)."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from tests.serving.cases import (
    EXPLAIN,
    V1,
    V2,
    check_bad_input,
    check_explain,
    check_v1,
    check_v2,
    each_bad_input,
    named,
    post,
    rows,
    wait_ready,
)
from tests.serving.conftest import MODEL_VERSION


def make_family_dirs(root: Path, n_rows: int = 20_000, seed: int = 3) -> dict[str, Path]:
    """A small real MLP and its blend with a small XGBoost, each saved as a serving model directory."""
    from fraud_detection import synth
    from fraud_detection.boosting import TrainParams, features_and_label
    from fraud_detection.families.fit import fit_blend, fit_family
    from fraud_detection.modeldir import ModelMetadata, save_model_dir

    frame = synth.generate(synth.SyntheticConfig(n_rows=n_rows, seed=seed))
    cut = int(len(frame) * 0.7)
    x_train, y_train = features_and_label(frame.iloc[:cut])
    x_valid, y_valid = features_and_label(frame.iloc[cut:])
    params = TrainParams(
        n_rounds=30, early_stopping_rounds=10, max_depth=4, nthread=1, mlp_max_epochs=4, mlp_hidden_units=[16, 8]
    )
    parts = [fit_family(f, x_train, y_train, x_valid, y_valid, params) for f in ("xgboost", "mlp")]
    fitted = {"mlp": parts[1], "blend": fit_blend(parts, x_valid, y_valid)}
    return {
        family: save_model_dir(
            f.model,
            ModelMetadata(model_version=MODEL_VERSION, threshold=f.threshold, data_version="test"),
            root / family,
        )
        for family, f in fitted.items()
    }


@pytest.fixture(scope="module")
def family_dirs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    return make_family_dirs(tmp_path_factory.mktemp("families"))


@pytest.fixture(scope="module", params=["mlp", "blend"])
def family_app(request: pytest.FixtureRequest, family_dirs: dict[str, Path]) -> Iterator[tuple[Any, Path]]:
    """The app in-process serving one family's model directory."""
    from fastapi.testclient import TestClient

    from serving.app import create_app
    from serving.settings import ServingSettings

    directory = family_dirs[request.param]
    app = create_app(ServingSettings(model_uri=str(directory), max_batch_rows=50, load_retry_seconds=0))
    with TestClient(app) as client:
        wait_ready(client)
        yield client, directory


def test_v1_and_flat_bodies(family_app: tuple[Any, Path]) -> None:
    client, directory = family_app
    x = rows(4, seed=2)
    check_v1(post(client, V1, {"instances": named(x)}), directory, x)
    check_v1(post(client, V1, {"instances": x.tolist()}), directory, x)
    check_v1(post(client, "/predict", named(x[:1])[0]), directory, x[:1])


def test_v2_tensor(family_app: tuple[Any, Path]) -> None:
    client, directory = family_app
    x = rows(3, seed=4)
    body = {"inputs": [{"name": "x", "shape": list(x.shape), "datatype": "FP32", "data": x.tolist()}]}
    check_v2(post(client, V2, body), directory, x)


def test_explain_names_its_method_and_adds_up(family_app: tuple[Any, Path]) -> None:
    client, directory = family_app
    x = rows(3, seed=6)
    body = check_explain(post(client, EXPLAIN, {"instances": named(x)}), directory, x)
    assert "deeplift" in body["method"]


@each_bad_input
def test_bad_input_gets_a_clear_4xx(
    family_app: tuple[Any, Path], path: str, body: Any, headers: dict[str, str] | None, status: int, words: list[str]
) -> None:
    check_bad_input(family_app[0], path, body, headers, status, words)


def test_serve_holds_numpy_blas_to_the_predict_threads(monkeypatch: pytest.MonkeyPatch) -> None:
    import serving.server
    from serving.main import BLAS_THREAD_VARIABLES, serve
    from serving.settings import ServingSettings

    for name in BLAS_THREAD_VARIABLES:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv("MKL_NUM_THREADS", "4")  # an operator's own choice is kept
    monkeypatch.setattr(serving.server, "run", lambda settings: 0)
    assert serve(ServingSettings(predict_threads=2)) == 0
    import os

    assert [os.environ[name] for name in BLAS_THREAD_VARIABLES] == ["2", "2", "4"]
