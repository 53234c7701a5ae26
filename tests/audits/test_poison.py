"""Poison sweep: attacks are seeded, nested and stratified; the defence undoes flips; the report adds up."""

from __future__ import annotations

import dataclasses
import json
import math
from pathlib import Path

import numpy as np
import pytest
from sklearn.metrics import average_precision_score

from fraud_detection.audits import defence, poison, poison_results
from fraud_detection.boosting import predict_proba, train_booster
from fraud_detection.metrics import evaluate
from fraud_detection.reports.poison import markdown, recovered_text, render_poison
from tests.audits.conftest import FAST_PARAMS, Windows, run_poison_level


def test_random_flips_are_stratified_seeded_and_nested(windows: Windows) -> None:
    x, y = windows.x["train"], windows.y["train"]
    n_fraud, n_legit = int(y.sum()), int((y == 0).sum())
    previous = np.empty(0, dtype=np.int64)
    for level in (0.01, 0.02, 0.05, 0.10, 0.20):
        flips = poison.flip_indices(x, y, "random", level, seed=3)
        assert np.array_equal(flips, poison.flip_indices(x, y, "random", level, seed=3))
        assert int(np.sum(y[flips] == 1)) == round(level * n_fraud)
        assert int(np.sum(y[flips] == 0)) == round(level * n_legit)
        assert np.isin(previous, flips).all(), f"level {level} does not contain the lower level's flips"
        previous = flips
    assert not np.array_equal(
        poison.flip_indices(x, y, "random", 0.1, seed=3), poison.flip_indices(x, y, "random", 0.1, seed=4)
    )


def test_targeted_flips_hide_the_frauds_nearest_one_anchor(windows: Windows) -> None:
    x, y = windows.x["train"], windows.y["train"]
    small = poison.flip_indices(x, y, "targeted", 0.05, seed=1)
    large = poison.flip_indices(x, y, "targeted", 0.20, seed=1)
    assert (y[large] == 1).all(), "targeted attack must only flip fraud to legitimate"
    assert large.size == round(0.20 * int(y.sum()))
    assert np.isin(small, large).all()
    # The flipped frauds form a neighbourhood: on average closer to each other than to the other frauds.
    scale = x.std(axis=0)
    fraud = np.flatnonzero(y == 1)
    rest = np.setdiff1d(fraud, large)
    z = x / scale
    inside = np.linalg.norm(z[large][:, None] - z[large][None], axis=2).mean()
    across = np.linalg.norm(z[large][:, None] - z[rest][None], axis=2).mean()
    assert inside < across
    poisoned = poison.poison_labels(x, y, "targeted", 0.20, seed=1)
    assert int(poisoned.sum()) == int(y.sum()) - large.size


@pytest.mark.parametrize(
    ("kind", "level", "message"),
    [("random", 1.0, "within \\[0, 1\\)"), ("random", -0.1, "within"), ("flood", 0.1, "unknown attack kind")],
)
def test_bad_attack_requests_are_named(windows: Windows, kind: str, level: float, message: str) -> None:
    with pytest.raises(ValueError, match=message):
        poison.flip_indices(windows.x["train"], windows.y["train"], kind, level)


def test_no_attack_and_level_zero_flip_nothing(windows: Windows) -> None:
    assert poison.flip_indices(windows.x["train"], windows.y["train"], "none", 0.0).size == 0
    assert poison.flip_indices(windows.x["train"], windows.y["train"], "random", 0.0).size == 0


def test_sweep_params_cap_rounds_at_the_champions() -> None:
    capped = poison.sweep_params(FAST_PARAMS, best_iteration=11)
    assert capped.n_rounds == 12 and capped.max_depth == FAST_PARAMS.max_depth
    assert poison.sweep_params(FAST_PARAMS, best_iteration=500).n_rounds == FAST_PARAMS.n_rounds
    assert poison.sweep_params(FAST_PARAMS) == FAST_PARAMS


def test_sanitiser_drops_flipped_legit_labels_and_spares_genuine_fraud(windows: Windows) -> None:
    x, y = windows.x["train"], windows.y["train"]
    flips = poison.flip_indices(x, y, "random", 0.10, seed=5)
    poisoned = poison.poison_labels(x, y, "random", 0.10, seed=5)
    booster, threshold = defence.train_sanitiser(windows.x["validation"], windows.y["validation"], FAST_PARAMS)
    result = defence.sanitise(x, poisoned, booster, threshold)
    flipped_legit = flips[y[flips] == 0]
    genuine = np.flatnonzero((y == 1) & (poisoned == 1))
    assert (~result.keep[flipped_legit]).mean() > 0.6, "most legitimate rows labelled fraud should be dropped"
    assert (~result.keep[genuine]).mean() < 0.25, "genuine fraud labels should mostly survive"
    assert result.dropped == int((~result.keep).sum())
    assert result.relabelled == int(np.sum(result.labels != poisoned))


def test_sanitiser_needs_fraud_in_the_trusted_window(windows: Windows) -> None:
    y = np.zeros_like(windows.y["validation"])
    with pytest.raises(ValueError, match="no fraud label"):
        defence.train_sanitiser(windows.x["validation"], y, FAST_PARAMS)


def test_atypicality_is_large_only_for_unusual_rows() -> None:
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2000, 29))
    x[:, -1] = np.exp(rng.normal(3, 1, 2000))
    x[0, 5] = 12.0
    score = defence.atypicality(x)
    assert score[0] > 10 and np.median(score[1:]) < 4


def _run(windows: Windows, kind: str, level: float, defend: bool = True) -> poison_results.LevelResult:
    return run_poison_level(windows, kind, level, seed=2, defend=defend)


def test_run_level_baseline_is_the_plain_model_and_serialises(windows: Windows) -> None:
    result = _run(windows, "none", 0.0)
    as_json = json.dumps(result.to_dict(), allow_nan=False)
    assert poison_results.LevelResult.from_dict(json.loads(as_json)) == result, (
        "a level survives its task's JSON output"
    )
    w = windows
    direct = train_booster(w.x["train"], w.y["train"], w.x["validation"], w.y["validation"], FAST_PARAMS, 0)
    expected = evaluate(w.y["test"], predict_proba(direct.booster, w.x["test"]), direct.threshold)
    assert result.attacked.auprc == pytest.approx(expected["auprc"])
    assert result.flipped == 0
    assert result.defended is not None
    assert result.defended.relabelled >= 0 and 0.0 <= result.defended.auprc <= 1.0


def test_heavy_random_poisoning_hurts_and_the_defence_recovers(windows: Windows) -> None:
    clean = _run(windows, "none", 0.0, defend=False)
    attacked = _run(windows, "random", 0.20)
    assert clean.defended is None and "defended" in clean.to_dict() and "defence_params" not in clean.to_dict()
    assert attacked.flipped_legit_to_fraud == round(0.2 * int((windows.y["train"] == 0).sum()))
    assert attacked.attacked.auprc < clean.attacked.auprc - 0.05
    assert attacked.defended is not None
    assert attacked.defended.auprc > attacked.attacked.auprc
    assert attacked.defended.flips_undone > 0.5 * attacked.flipped


def _scores(auprc: float, **extra: float) -> dict:
    return {
        "auprc": auprc,
        "roc_auc": 0.95,
        "recall": auprc,
        "precision": 0.5,
        "f1": 0.6,
        "recall_at_precision_90": 0.4,
        "threshold": 0.3,
        "best_iteration": 9,
        **extra,
    }


def _fake(kind: str, level: float, auprc: float, defended: float | None) -> poison_results.LevelResult:
    knobs = {"relabelled": 1, "sanitiser_threshold": 0.2, "dropped": 2, "flips_undone": 1, "clean_rows_touched": 2}
    return poison_results.LevelResult.from_dict(
        {
            "kind": kind,
            "level": level,
            "flipped": int(level * 1000),
            "attacked": _scores(auprc),
            "defended": None if defended is None else _scores(defended, **knobs),
        }
    )


def test_a_result_missing_its_scores_is_named() -> None:
    with pytest.raises(ValueError, match=r"missing \['attacked'\]"):
        poison_results.LevelResult.from_dict({"kind": "random", "level": 0.1})
    with pytest.raises(ValueError, match="roc_auc"):
        poison_results.LevelResult.from_dict({"kind": "random", "level": 0.1, "attacked": {"auprc": 0.5}})


def test_degradation_table_computes_loss_and_recovery() -> None:
    results = [
        _fake("none", 0.0, 0.90, 0.89),
        _fake("random", 0.20, 0.60, 0.84),
        _fake("random", 0.01, 0.898, 0.90),
        _fake("targeted", 0.10, 0.70, None),
    ]
    rows = poison_results.degradation_table(results)
    assert [(r.kind, r.level_pct) for r in rows] == [
        ("random", 0.0),
        ("random", 1.0),
        ("random", 20.0),
        ("targeted", 0.0),
        ("targeted", 10.0),
    ]
    worst = rows[2]
    assert worst.auprc_lost == pytest.approx(0.30)
    assert worst.recovered == pytest.approx((0.84 - 0.60) / 0.30)
    assert rows[1].recovered is None, "unmeasured noise: a loss below 0.005 AUPRC gives no recovery ratio"
    assert rows[4].auprc_defended is None and rows[4].recovered is None
    metrics = poison_results.summary_metrics(rows)
    assert metrics["clean_auprc"] == pytest.approx(0.90)
    assert metrics["random_20pct_auprc"] == pytest.approx(0.60)
    assert metrics["random_20pct_recovered"] == pytest.approx(0.8)
    assert "targeted_10pct_auprc_defended" not in metrics and "targeted_10pct_recovered" not in metrics
    with pytest.raises(ValueError, match="no clean baseline"):
        poison_results.degradation_table([_fake("random", 0.2, 0.6, None)])


def test_render_writes_a_self_contained_report_and_returns_its_paths(tmp_path) -> None:
    results = [_fake("none", 0.0, 0.90, 0.89), _fake("random", 0.1, 0.8, 0.85), _fake("targeted", 0.1, 0.85, 0.88)]
    sweep = poison.summarise(results)
    files = render_poison(sweep, tmp_path / "out")
    assert all(path.is_file() and path.parent == tmp_path / "out" for path in files.paths())
    html = files.report_html.read_text()
    assert html.count('src="data:image/png;base64,') == 1
    assert "http://" not in html and "https://" not in html
    assert files.degradation_png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert json.loads(files.table_json.read_text()) == [r.to_dict() for r in sweep.table]
    assert [poison_results.LevelResult.from_dict(r) for r in json.loads(files.results_json.read_text())] == results
    assert "| random | 10 |" in markdown(sweep)
    assert sweep.metrics["random_10pct_recovered"] == pytest.approx(0.5)
    assert all(math.isfinite(v) for v in sweep.metrics.values())


def test_a_sweep_without_baseline_is_refused() -> None:
    with pytest.raises(ValueError, match="at least one"):
        poison.summarise([])
    with pytest.raises(ValueError, match="no clean baseline"):
        poison.summarise([_fake("targeted", 0.1, 0.85, None)])


def test_the_auprc_standard_error_is_the_spread_of_stratified_bootstrap_resamples() -> None:
    rng = np.random.default_rng(3)
    y = (rng.random(5000) < 0.02).astype(int)
    scores = np.round(np.clip(0.3 * rng.random(5000) + y * rng.random(5000), 0, 1), 2)  # ties, as real scores have
    se = poison_results.auprc_standard_error(y, scores, resamples=50, seed=4)
    # the same resamples, scored by scikit-learn with the resample counts as weights
    draw = np.random.default_rng([4, 7])
    order = np.argsort(-scores, kind="stable")
    fraud, legit = np.flatnonzero(y[order] == 1), np.flatnonzero(y[order] == 0)
    values = []
    for _ in range(50):
        counts = np.bincount(fraud[draw.integers(fraud.size, size=fraud.size)], minlength=y.size)
        counts += np.bincount(legit[draw.integers(legit.size, size=legit.size)], minlength=y.size)
        values.append(average_precision_score(y[order], scores[order], sample_weight=counts))
    assert se == pytest.approx(np.std(values, ddof=1), rel=1e-9)
    assert 0.0 < se < 0.2


def _with_noise(result: poison_results.LevelResult, se: float) -> poison_results.LevelResult:
    return dataclasses.replace(result, auprc_se=se)


def test_a_loss_within_the_noise_gets_no_recovery_share(tmp_path: Path) -> None:
    """The default data's 5 % random row: a 0.024 loss, 'recovered -146 %', while the clean AUPRC's standard error
    is about 0.02."""
    results = [
        _with_noise(_fake("none", 0.0, 0.884, 0.877), 0.02),
        _fake("random", 0.05, 0.860, 0.827),
        _fake("random", 0.20, 0.661, 0.825),
    ]
    rows = poison_results.degradation_table(results)
    within, beyond = rows[1], rows[2]
    assert within.auprc_lost == pytest.approx(0.024) and within.recovered is None
    assert within.auprc_noise == pytest.approx(0.04)
    assert beyond.recovered == pytest.approx((0.825 - 0.661) / (0.884 - 0.661))
    assert recovered_text(within.to_dict()) == "–" and recovered_text(beyond.to_dict()) == "74%"
    sweep = poison.summarise(results)
    assert sweep.metrics["auprc_noise"] == pytest.approx(0.04)
    html = render_poison(sweep, tmp_path).report_html.read_text()
    assert "2 standard errors of the clean AUPRC (0.040 AUPRC here)" in html
    assert "-146" not in html and "−146" not in html


def test_the_clean_baseline_measures_the_noise_and_attacked_levels_do_not(windows: Windows) -> None:
    clean = _run(windows, "none", 0.0, defend=False)
    attacked = _run(windows, "random", 0.05, defend=False)
    assert clean.auprc_se is not None and 0.0 < clean.auprc_se < 0.2
    assert attacked.auprc_se is None
    assert poison_results.LevelResult.from_dict(clean.to_dict()).auprc_se == clean.auprc_se
