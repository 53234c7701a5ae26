"""Model families: each one's own file format, exact scoring after a round trip, explanations that add up, the
blend, and version 1 model directories still read."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fraud_detection import boosting, modeldir, synth
from fraud_detection.families import fit
from fraud_detection.families.mlp import MLPModel
from fraud_detection.families.xgboost import XGBoostModel


@pytest.fixture(scope="module")
def windows() -> dict[str, tuple[np.ndarray, np.ndarray]]:
    frame = synth.generate(synth.SyntheticConfig(n_rows=30_000, seed=11))
    cut, end = int(0.6 * len(frame)), int(0.8 * len(frame))
    return {
        "train": boosting.features_and_label(frame.iloc[:cut]),
        "valid": boosting.features_and_label(frame.iloc[cut:end]),
        "test": boosting.features_and_label(frame.iloc[end:]),
    }


@pytest.fixture(scope="module")
def fits(windows: dict[str, Any]) -> dict[str, fit.FamilyFit]:
    (xt, yt), (xv, yv) = windows["train"], windows["valid"]
    params = boosting.TrainParams(n_rounds=40, early_stopping_rounds=10, mlp_max_epochs=5, mlp_hidden_units=[16, 8])
    out = {family: fit.fit_family(family, xt, yt, xv, yv, params) for family in ("xgboost", "mlp")}
    out["blend"] = fit.fit_blend([out["xgboost"], out["mlp"]], xv, yv)
    return out


def test_the_numpy_network_equals_scikit_learns() -> None:
    from sklearn.neural_network import MLPClassifier

    rng = np.random.default_rng(0)
    x = rng.normal(size=(600, 29)).astype(np.float32)
    y = (x[:, 0] * x[:, 1] > 0.5).astype(int)
    network = MLPClassifier((12, 6), max_iter=50, random_state=0).fit(x, y)
    ours = MLPModel(np.zeros(29), np.ones(29), network.coefs_, network.intercepts_)
    # scikit-learn computes in the input's float32; ours in float64 from the same weights
    np.testing.assert_allclose(ours.predict_proba(x), network.predict_proba(x)[:, 1], rtol=1e-6, atol=1e-9)


@pytest.mark.parametrize("family", ["xgboost", "mlp", "blend"])
def test_each_family_round_trips_in_its_own_format(
    family: str, fits: dict[str, fit.FamilyFit], windows: dict[str, Any], tmp_path: Path
) -> None:
    fitted = fits[family]
    meta = modeldir.ModelMetadata(model_version="candidate", threshold=fitted.threshold)
    modeldir.save_model_dir(fitted.model, meta, tmp_path)
    saved = json.loads((tmp_path / modeldir.METADATA_FILE).read_text())
    expected_files = {"xgboost": ["model.ubj"], "mlp": ["mlp.npz"], "blend": ["model.ubj", "mlp.npz"]}[family]
    assert saved["family"] == family and saved["files"] == expected_files and saved["format_version"] == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted([*expected_files, "metadata.json"])
    if family == "blend":
        assert set(saved["blend_weights"]) == {"xgboost", "mlp"}
    loaded, _ = modeldir.load_model_dir(tmp_path)
    x = windows["test"][0]
    np.testing.assert_allclose(loaded.predict_proba(x), fitted.model.predict_proba(x), rtol=1e-12)


@pytest.mark.parametrize("family", ["xgboost", "mlp", "blend"])
def test_explanations_add_up_exactly_to_the_log_odds(
    family: str, fits: dict[str, fit.FamilyFit], windows: dict[str, Any]
) -> None:
    model = fits[family].model
    x = windows["test"][0][:300]
    contributions, base = model.explain(x)
    assert contributions.shape == (300, 29) and base.shape == (300,)
    # XGBoost sums its TreeSHAP values in float32; the network's DeepLIFT is float64 throughout
    np.testing.assert_allclose(contributions.sum(axis=1) + base, model.logit(x), atol=1e-4 if family != "mlp" else 1e-9)
    np.testing.assert_allclose(model.predict_proba(x), 1 / (1 + np.exp(-model.logit(x))), rtol=1e-6)


def test_deeplift_of_a_network_without_hidden_layers_is_weight_times_input() -> None:
    weights = np.linspace(-1, 1, 29)[:, None]
    model = MLPModel(np.full(29, 2.0), np.full(29, 0.5), [weights], [np.array([0.3])])
    x = np.random.default_rng(1).normal(size=(4, 29)).astype(np.float32)
    contributions, base = model.explain(x)
    np.testing.assert_allclose(contributions, weights[:, 0] * (x - 2.0) / 0.5)
    np.testing.assert_allclose(base, 0.3)


def test_the_mlp_is_calibrated_and_found_fraud(fits: dict[str, fit.FamilyFit], windows: dict[str, Any]) -> None:
    from sklearn.metrics import average_precision_score

    x, y = windows["test"]
    scores = fits["mlp"].model.predict_proba(x)
    assert average_precision_score(y, scores) > 5 * y.mean()
    assert scores.mean() == pytest.approx(y.mean(), rel=1.0), "fraud weighting must be undone in the output bias"


def test_a_version_1_directory_is_still_read(fits: dict[str, fit.FamilyFit], tmp_path: Path) -> None:
    model = fits["xgboost"].model
    assert isinstance(model, XGBoostModel)
    model.booster.save_model(str(tmp_path / "model.ubj"))
    v1 = {
        "format_version": 1,
        "model_version": "4",
        "feature_names": list(modeldir.FEATURES),
        "threshold": 0.3,
        "xgboost_version": "3.2.0",
    }
    (tmp_path / "metadata.json").write_text(json.dumps(v1))
    loaded, meta = modeldir.load_model_dir(tmp_path)
    assert meta.family == "xgboost" and meta.files == ["model.ubj"] and meta.format_version == 1
    x = np.zeros((3, 29), dtype=np.float32)
    np.testing.assert_allclose(loaded.predict_proba(x), model.predict_proba(x))


@pytest.mark.parametrize(
    ("damage", "words"),
    [
        (lambda d: (d / "mlp.npz").write_bytes(b"not an npz"), ["mlp.npz", "not a readable .npz file"]),
        (lambda d: (d / "mlp.npz").unlink(), ["mlp.npz", "model file is missing"]),
        (lambda d: (d / "model.ubj").unlink(), ["model.ubj", "model file is missing"]),
        (
            lambda d: (d / "metadata.json").write_text(
                (d / "metadata.json").read_text().replace('"blend"', '"forest"')
            ),
            ["family must be one of xgboost, mlp, blend", "'forest'"],
        ),
    ],
)
def test_a_damaged_directory_names_the_file_at_fault(
    damage: Any, words: list[str], fits: dict[str, fit.FamilyFit], tmp_path: Path
) -> None:
    modeldir.save_model_dir(fits["blend"].model, modeldir.ModelMetadata(model_version="1", threshold=0.5), tmp_path)
    damage(tmp_path)
    with pytest.raises(modeldir.ModelDirError) as error:
        modeldir.load_model_dir(tmp_path)
    for word in words:
        assert word in str(error.value)


def test_an_npz_holding_objects_is_refused_not_unpickled(fits: dict[str, fit.FamilyFit], tmp_path: Path) -> None:
    modeldir.save_model_dir(fits["mlp"].model, modeldir.ModelMetadata(model_version="1", threshold=0.5), tmp_path)
    with (tmp_path / "mlp.npz").open("wb") as handle:
        np.savez(handle, mean=np.array([{"a": 1}], dtype=object))
    with pytest.raises(modeldir.ModelDirError, match=r"mlp\.npz: not a readable \.npz file"):
        modeldir.load_model_dir(tmp_path)


def test_the_mlp_on_downsampled_weighted_rows_stays_calibrated(windows: dict[str, Any]) -> None:
    """Every fraud and 20 % of legitimate rows: weighted back, the mean probability stays near the test window's
    fraud rate; unweighted, the same rows inflate it several times. (Fewer rows make fewer optimiser steps per
    epoch, hence 20 epochs.)"""
    from fraud_detection import sampling

    (xt, yt), (xv, yv), (x_test, y_test) = windows["train"], windows["valid"], windows["test"]
    params = boosting.TrainParams(mlp_max_epochs=20, mlp_patience=20, mlp_hidden_units=[16, 8])
    rows, weights = sampling.downsample(yt, 0.2, seed=1)
    weighted = fit.fit_family("mlp", xt[rows], yt[rows], xv, yv, params, sample_weight=weights)
    unweighted = fit.fit_family("mlp", xt[rows], yt[rows], xv, yv, params)
    ratio = weighted.model.predict_proba(x_test).mean() / y_test.mean()
    inflated = unweighted.model.predict_proba(x_test).mean() / y_test.mean()
    assert 1 / 2.5 < ratio < 2.5, ratio
    assert inflated > 2 * ratio, (inflated, ratio)
    full_weight = boosting.auto_weight(yt)
    assert weighted.details["scale_pos_weight"] == pytest.approx(full_weight, rel=0.05)


def test_every_family_the_train_step_can_fit_has_a_fitter_and_a_model_file() -> None:
    from fraud_detection.families import FAMILIES
    from fraud_detection.families.models import FILES

    assert set(fit.FITTERS) == set(FAMILIES) == set(FILES)
    with pytest.raises(ValueError, match="unknown model family 'forest'"):
        fit.fit_family("forest", np.zeros((2, 29)), np.zeros(2), np.zeros((2, 29)), np.zeros(2), boosting.TrainParams())
