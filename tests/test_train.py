"""Training rules: threshold choice, calibration, metrics, and the quality bar on the default data."""

from __future__ import annotations

import math

import numpy as np
import pytest
import xgboost as xgb
from sklearn.metrics import average_precision_score

from fraud_detection import boosting, data, metrics, synth
from fraud_detection.families.fit import logistic_baseline
from fraud_detection.schema import FEATURES


def test_choose_threshold_maximises_f1():
    y = np.array([0, 0, 0, 1, 0, 1, 1, 1])
    scores = np.array([0.1, 0.2, 0.3, 0.35, 0.4, 0.6, 0.7, 0.9])
    # At 0.6: precision 1, recall 0.75, F1 0.857 (best); at 0.35: precision 0.8, recall 1, F1 0.889.
    assert metrics.choose_threshold(y, scores) == pytest.approx(0.35)
    # A large beta favours recall; a small beta favours precision.
    assert metrics.choose_threshold(y, scores, beta=0.3) == pytest.approx(0.6)


def test_choose_threshold_needs_positives():
    with pytest.raises(ValueError, match="positive"):
        metrics.choose_threshold(np.zeros(4), np.linspace(0, 1, 4))


def test_evaluate_counts_and_rates():
    y = np.array([1, 1, 0, 0, 0])
    scores = np.array([0.9, 0.2, 0.8, 0.1, 0.05])
    m = metrics.evaluate(y, scores, threshold=0.5)
    assert (m["tp"], m["fp"], m["fn"], m["tn"]) == (1, 1, 1, 2)
    assert m["precision"] == 0.5 and m["recall"] == 0.5 and m["f1"] == 0.5
    assert 0 < m["auprc"] <= 1 and 0 < m["roc_auc"] <= 1


def test_recall_at_precision():
    y = np.array([1, 1, 0, 1, 0])
    scores = np.array([0.9, 0.8, 0.7, 0.6, 0.1])
    assert metrics.recall_at_precision(y, scores, 0.9) == pytest.approx(2 / 3)
    assert metrics.recall_at_precision(y, scores, 0.7) == pytest.approx(1.0)


def test_roc_points_are_few_and_span_the_curve():
    rng = np.random.default_rng(0)
    y = (rng.random(20_000) < 0.01).astype(int)
    scores = rng.random(20_000) + y * rng.random(20_000)
    fpr, tpr, thresholds = metrics.roc_points(y, scores, max_points=50)
    assert len(fpr) <= 50 and len(fpr) == len(tpr) == len(thresholds)
    assert (fpr[0], tpr[0]) == (0.0, 0.0) and (fpr[-1], tpr[-1]) == (1.0, 1.0)
    assert all(math.isfinite(t) for t in thresholds)


@pytest.fixture(scope="module")
def trained(small_frame):
    windows = data.time_split(data.validate(small_frame, "age_group"))
    xy = {name: boosting.features_and_label(w) for name, w in windows.items()}
    result = boosting.train_booster(*xy["train"], *xy["validation"], boosting.TrainParams(n_rounds=120), log_every=0)
    return result, xy


def test_booster_is_calibrated_despite_class_weight(trained):
    result, xy = trained
    assert result.scale_pos_weight > 5
    x, y = xy["train"]
    # Weighted training inflates odds by scale_pos_weight; the saved booster undoes it, so the mean
    # predicted probability is close to the fraud rate instead of several times higher.
    mean_probability = boosting.predict_proba(result.booster, x).mean()
    assert 0.5 * y.mean() < mean_probability < 2.0 * y.mean()


def test_booster_is_cut_at_best_round(trained):
    result, _ = trained
    assert result.booster.num_boosted_rounds() == result.best_iteration + 1


def test_validation_without_fraud_is_a_clear_error(trained):
    _, xy = trained
    x_train, y_train = xy["train"]
    x_valid, y_valid = xy["validation"]
    with pytest.raises(ValueError, match="validation window has no fraud rows"):
        boosting.train_booster(x_train, y_train, x_valid, np.zeros_like(y_valid))


@pytest.mark.slow
def test_default_data_reaches_95_percent_of_best_achievable_and_beats_logistic_regression():
    frame = data.validate(synth.generate(), "age_group")
    windows = data.time_split(frame)
    xy = {name: boosting.features_and_label(w) for name, w in windows.items()}
    result = boosting.train_booster(*xy["train"], *xy["validation"], log_every=0)
    x_test, y_test = xy["test"]
    ours = average_precision_score(y_test, boosting.predict_proba(result.booster, x_test))
    best = average_precision_score(y_test, synth.true_probability(x_test))
    linear = average_precision_score(y_test, logistic_baseline(*xy["train"], x_test))
    assert ours >= 0.95 * best, (ours, best)
    assert ours >= 1.5 * linear, (ours, linear)


def test_weighted_sample_keeps_every_fraud_and_is_unbiased():
    rng = np.random.default_rng(1)
    y = (rng.random(500_000) < 0.002).astype(np.int32)
    scores = rng.random(y.size) + y * rng.random(y.size)
    rows, weights = boosting.weighted_sample(y, seed=3, max_rows=50_000)
    assert rows.size == 50_000 and np.array_equal(np.sort(rows), rows)
    assert y[rows].sum() == y.sum()  # every fraud row is kept
    assert weights[y[rows] == 0].sum() == pytest.approx((y == 0).sum())  # negatives stand for the whole window
    full = average_precision_score(y, scores)
    estimate = average_precision_score(y[rows], scores[rows], sample_weight=weights)
    assert estimate == pytest.approx(full, rel=0.05)
    small_rows, small_weights = boosting.weighted_sample(y[:10_000], seed=3, max_rows=50_000)
    assert small_rows.size == 10_000 and (small_weights == 1).all()


def _bin_shares(x: np.ndarray, matrix: xgb.QuantileDMatrix) -> list[np.ndarray]:
    """For each feature, the share of ``x``'s rows that falls into each of the matrix's histogram bins."""
    indptr, values = matrix.get_quantile_cut()
    shares = []
    for j in range(x.shape[1]):
        edges = values[indptr[j] : indptr[j + 1]]
        counts = np.bincount(np.searchsorted(edges, x[:, j], side="right"), minlength=edges.size + 1)
        shares.append(counts / x.shape[0])
    return shares


def test_training_matrix_sketches_a_sample_of_a_large_window_and_all_of_a_small_one():
    """Above twice the bound the bin edges come from a weighted sample, yet they split the whole window as evenly
    as XGBoost's sketch of every row does; at twice the bound or below, the matrix is the plain one."""
    rng = np.random.default_rng(5)
    x = np.column_stack([rng.normal(size=300_000), rng.exponential(size=300_000), rng.integers(0, 40, 300_000)])
    x = np.hstack([x, rng.normal(size=(300_000, len(FEATURES) - 3))]).astype(np.float32)
    y = (rng.random(300_000) < 0.002).astype(np.int32)
    full = xgb.QuantileDMatrix(x, label=y, feature_names=list(FEATURES))
    sampled = boosting.training_matrix(x, y, None, seed=0, sketch_max_rows=30_000)
    assert sampled.num_row() == x.shape[0]
    assert not np.array_equal(sampled.get_quantile_cut()[1], full.get_quantile_cut()[1])  # edges came from a sample
    for ours, theirs in zip(_bin_shares(x, sampled), _bin_shares(x, full), strict=True):
        assert ours.max() <= 1.5 * theirs.max(), (ours.max(), theirs.max())  # no bin much fuller than XGBoost's
        assert ours.size >= 0.9 * theirs.size
    small = boosting.training_matrix(x, y, None, seed=0, sketch_max_rows=x.shape[0] // 2)
    for a, b in zip(small.get_quantile_cut(), full.get_quantile_cut(), strict=True):
        np.testing.assert_array_equal(a, b)


def test_family_step_bounds_and_downsamples_the_training_window(tmp_path, caplog):
    """``max_train_rows`` (the Dask engine's MLP) reads a weighted bounded sample; ``negative_sample_rate``
    keeps every fraud and weights legitimate rows back, so the fraud weight is the whole window's."""
    import logging

    from fraud_detection import modeldir
    from fraud_detection.steps.bakeoff import train_family_step

    windows = data.time_split(data.validate(synth.generate(synth.SyntheticConfig(n_rows=20_000, seed=4)), "age_group"))
    for name in ("train", "validation"):
        data.write_parquet(windows[name], tmp_path / f"{name}.parquet")
    y_train = windows["train"]["Class"].to_numpy()
    params = boosting.TrainParams(n_rounds=30, early_stopping_rounds=10, mlp_max_epochs=3, mlp_hidden_units=[8])
    paths = (tmp_path / "train.parquet", tmp_path / "validation.parquet")
    with caplog.at_level(logging.INFO, logger="fraud_detection.data"):
        mlp = train_family_step("mlp", *paths, params, tmp_path / "mlp", "v", max_train_rows=5000)
    assert f"of {len(y_train)} rows (every fraud row)" in caplog.text
    model, meta = modeldir.load_model_dir(tmp_path / "mlp")
    assert meta.family == "mlp" and model.family == "mlp"
    assert mlp["scale_pos_weight"] == pytest.approx(boosting.auto_weight(y_train), rel=0.1)
    booster = train_family_step("xgboost", *paths, params, tmp_path / "xgb", "v", negative_sample_rate=0.3)
    assert booster["scale_pos_weight"] == pytest.approx(boosting.auto_weight(y_train), rel=0.05)
    assert booster["validation_auprc"] > 5 * windows["validation"]["Class"].mean()


def test_one_sort_gives_scikit_learns_metrics_and_threshold():
    """:class:`metrics.RankCurve` derives every rank metric from one sort; each must equal scikit-learn's own
    function (which sorts again), ties and the F-beta tie rule included, on random and on tied scores."""
    from sklearn.metrics import precision_recall_curve, roc_auc_score

    def sklearn_threshold(y: np.ndarray, scores: np.ndarray, beta: float) -> float:
        precision, recall, thresholds = precision_recall_curve(y, scores)
        precision, recall = precision[:-1], recall[:-1]
        with np.errstate(divide="ignore", invalid="ignore"):
            fbeta = np.nan_to_num((1 + beta**2) * precision * recall / (beta**2 * precision + recall))
        return float(thresholds[np.flatnonzero(fbeta == fbeta.max())[-1]])  # ties: the higher threshold

    def sklearn_recall_at(y: np.ndarray, scores: np.ndarray, floor: float) -> float:
        precision, recall, _ = precision_recall_curve(y, scores)
        return float(recall[precision >= floor].max()) if (precision >= floor).any() else 0.0

    rng = np.random.default_rng(5)
    checked = 0
    for case in range(120):
        n = int(rng.integers(3, 4000))
        y = (rng.random(n) < (0.5 if case % 2 else 0.02)).astype(np.int32)
        if not 0 < y.sum() < n:
            continue
        scores = np.round(rng.random(n) + y * rng.random(), int(rng.integers(1, 5)))  # 1-4 decimals: many ties
        curve = metrics.rank_curve(y, scores)
        assert curve.auprc() == pytest.approx(average_precision_score(y, scores), abs=1e-12)
        assert curve.roc_auc() == pytest.approx(roc_auc_score(y, scores), abs=1e-12)
        for beta in (0.5, 1.0, 2.0):
            assert metrics.choose_threshold(y, scores, beta) == sklearn_threshold(y, scores, beta)
        assert metrics.recall_at_precision(y, scores, 0.9) == sklearn_recall_at(y, scores, 0.9)
        measured = metrics.evaluate(y, scores, 0.5)
        assert measured["auprc"] == curve.auprc() and measured["roc_auc"] == curve.roc_auc()
        checked += 1
    assert checked > 100


def test_select_reuses_the_validation_scores_each_family_saved(tmp_path):
    """The family step saves its validation scores beside its model; select reads them instead of scoring the
    window again, but only for the data version they were made on."""
    from fraud_detection import modeldir
    from fraud_detection.steps.bakeoff import VALIDATION_SCORES_FILE, select_step, train_family_step

    windows = data.time_split(data.validate(synth.generate(synth.SyntheticConfig(n_rows=20_000, seed=4)), "age_group"))
    paths = {name: tmp_path / f"{name}.parquet" for name in ("train", "validation", "test")}
    for name, path in paths.items():
        data.write_parquet(windows[name], path)
    params = boosting.TrainParams(n_rounds=30, early_stopping_rounds=10)
    family_dir = tmp_path / "xgboost"
    train_family_step("xgboost", paths["train"], paths["validation"], params, family_dir, "sha256:v1")
    saved = np.load(family_dir / VALIDATION_SCORES_FILE)
    model, _ = modeldir.load_model_dir(family_dir)
    x_valid, y_valid = data.read_xy(paths["validation"])
    assert np.allclose(saved, model.predict_proba(x_valid), rtol=0, atol=1e-7)

    np.save(family_dir / VALIDATION_SCORES_FILE, 1.0 - saved)  # select must use these, not its own scoring

    def selected_validation_auprc(data_version: str) -> float:
        result = select_step(
            [family_dir], *paths.values(), params, tmp_path / data_version[-2:],
            f"sqlite:///{tmp_path / 'mlflow.db'}", "reuse", data_version,
        )  # fmt: skip
        return result.metrics["validation_auprc"]

    assert selected_validation_auprc("sha256:v1") == pytest.approx(average_precision_score(y_valid, 1.0 - saved))
    assert selected_validation_auprc("sha256:v2") == pytest.approx(average_precision_score(y_valid, saved))


def test_metric_keys_keep_the_names_mlflow_kfp_and_model_directories_already_hold():
    """Keys are built in fraud_detection.metrics only; these strings are what earlier runs logged, so they stay."""
    y = np.array([0, 0, 1, 1, 0, 1])
    scores = np.array([0.1, 0.4, 0.35, 0.8, 0.2, 0.9])
    assert list(metrics.evaluate(y, scores, 0.5)) == [
        *("auprc", "roc_auc", "precision", "recall", "f1", "recall_at_precision_90", "threshold"),
        *("tp", "fp", "fn", "tn"),
    ]
    assert metrics.on(metrics.TEST, metrics.Metric.AUPRC) == "test_auprc"
    assert metrics.of("mlp", metrics.on(metrics.VALIDATION, metrics.Metric.AUPRC)) == "mlp_validation_auprc"
    assert metrics.of("xgboost", metrics.Detail.BEST_ITERATION) == "xgboost_best_iteration"
    assert metrics.blend_weight("xgboost") == "weight_xgboost"
    assert [str(k) for k in metrics.Run] == [
        *("baseline_lr_test_auprc", "test_fraud_rate", "oracle_test_auprc", "auprc_vs_oracle", "robust_fraction"),
        *("equalized_odds_difference", "test_card_precision_at_k", "card_precision_k"),
    ]
    assert all(type(k) is str for k in metrics.on_window(metrics.VALIDATION, metrics.evaluate(y, scores, 0.5)))
