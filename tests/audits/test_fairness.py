"""Fairness by group (checked against hand counts), the no-attribute path, and SHAP values that add up."""

from __future__ import annotations

import json

import numpy as np
import pytest

from fraud_detection.audits import explain, fairness
from fraud_detection.boosting import TrainResult, predict_proba
from fraud_detection.reports.fairness import render_fairness
from fraud_detection.schema import DataValidationError
from tests.audits.conftest import Windows


def test_group_metrics_match_hand_counts() -> None:
    rng = np.random.default_rng(4)
    n = 3000
    groups = rng.choice(np.array(["a", "b"]), size=n)
    y = (rng.random(n) < 0.1).astype(int)
    # Group b's frauds get lower scores: the model misses more of them.
    scores = np.where(y == 1, rng.uniform(0.3, 1.0, n), rng.uniform(0.0, 0.6, n))
    scores[(groups == "b") & (y == 1)] -= 0.25
    result = fairness.group_fairness(y, scores, 0.5, groups)
    flags = scores >= 0.5
    expected = {}
    for g in ("a", "b"):
        m = groups == g
        expected[g] = {
            "count": m.sum(),
            "frauds": (y[m] == 1).sum(),
            "recall": (flags & m & (y == 1)).sum() / (m & (y == 1)).sum(),
            "fpr": (flags & m & (y == 0)).sum() / (m & (y == 0)).sum(),
            "precision": (flags & m & (y == 1)).sum() / (flags & m).sum(),
            "selection_rate": flags[m].mean(),
        }
        for metric, value in expected[g].items():
            assert result.by_group[g][metric] == pytest.approx(value), (g, metric)
    assert result.recall_gap == pytest.approx(abs(expected["a"]["recall"] - expected["b"]["recall"]))
    assert result.demographic_parity_difference == pytest.approx(
        abs(expected["a"]["selection_rate"] - expected["b"]["selection_rate"])
    )
    gaps = (result.recall_gap, result.fpr_gap)
    assert result.equalized_odds_difference == pytest.approx(max(gaps))
    # Every group has far more than MIN_GROUP_FRAUDS frauds here: the same number as Fairlearn's own function.
    from fairlearn.metrics import equalized_odds_difference

    assert result.groups_below_support == []
    assert result.equalized_odds_difference == pytest.approx(
        equalized_odds_difference(y, flags.astype(int), sensitive_features=groups)
    )
    assert result.by_group["a"]["recall"] > result.by_group["b"]["recall"]


def test_a_group_with_too_few_frauds_is_reported_but_not_compared_on_recall() -> None:
    rng = np.random.default_rng(5)
    groups = np.array(["big"] * 4000 + ["tiny"] * 400)
    y = (rng.random(groups.size) < 0.05).astype(int)
    y[groups == "tiny"] = 0
    y[np.flatnonzero(groups == "tiny")[:2]] = 1  # two frauds: recall can only be 0, 0.5 or 1
    scores = np.where(y == 1, 0.9, 0.1)
    scores[np.flatnonzero(groups == "tiny")[0]] = 0.2  # one of the two is missed
    scores[np.flatnonzero((groups == "tiny") & (y == 0))[:3]] = 0.8  # three false alarms in the tiny group
    result = fairness.group_fairness(y, scores, 0.5, groups)

    assert result.by_group["tiny"]["recall"] == pytest.approx(0.5)
    assert result.by_group["big"]["recall"] == pytest.approx(1.0)
    assert result.groups_below_support == ["tiny"]
    assert np.isnan(result.recall_gap), "one supported group: no recall gap to measure"
    fpr_tiny = 3 / 398
    assert result.fpr_gap == pytest.approx(fpr_tiny)
    assert result.equalized_odds_difference == pytest.approx(fpr_tiny), "the FPR gap still counts"
    # With the rule switched off the 0.5 recall gap of two frauds decides, as Fairlearn's own function does.
    strict = fairness.group_fairness(y, scores, 0.5, groups, min_group_frauds=0)
    assert strict.equalized_odds_difference == pytest.approx(0.5)


def test_fewer_than_two_groups_is_not_measurable() -> None:
    y = np.array([0, 1] * 50)
    result = fairness.group_fairness(y, np.where(y == 1, 0.9, 0.1), 0.5, np.array(["only"] * 100))
    assert np.isnan(result.equalized_odds_difference)


def test_length_mismatch_is_named() -> None:
    with pytest.raises(ValueError, match="differ in length"):
        fairness.group_fairness(np.zeros(3), np.zeros(3), 0.5, np.array(["a", "b"]))


def test_shap_values_add_up_to_the_models_log_odds(windows: Windows, trained: TrainResult) -> None:
    x = windows.x["test"][:500]
    contribs, bias = explain.shap_values(trained.booster, x)
    p = predict_proba(trained.booster, x)
    assert contribs.shape == (500, 29)
    np.testing.assert_allclose(contribs.sum(axis=1) + bias, np.log(p / (1 - p)), atol=1e-3)


def test_audit_on_synthetic_groups_reports_real_disparities(windows: Windows, trained: TrainResult, tmp_path) -> None:
    result = fairness.run_fairness(windows.frames["test"], trained.booster, trained.threshold, "age_group")
    assert result.fairness_available is True and result.fairness is not None
    by_group = result.fairness.by_group
    assert set(by_group) == {"18-34", "35-59", "60+"}
    assert sum(g["count"] for g in by_group.values()) == len(windows.frames["test"])
    assert result.fairness.demographic_parity_difference > 0
    metrics = result.metrics()
    assert metrics["fairness_available"] == 1.0
    assert metrics["demographic_parity_difference"] == result.fairness.demographic_parity_difference
    # The attribute is never a model feature.
    assert "age_group" not in result.shap.importance
    assert len(result.shap.importance) == 29
    local = result.shap.local
    assert len(local) == 5 and local[0].score >= local[-1].score
    assert result.shap.sample_shap.shape == result.shap.sample_values.shape == (result.shap.sample_rows, 29)

    files = render_fairness(result, tmp_path)
    summary = json.loads(files.summary_json.read_text())
    assert {g: v["count"] for g, v in summary["fairness"]["by_group"].items()} == {
        g: v["count"] for g, v in by_group.items()
    }
    assert summary["metrics"] == pytest.approx(metrics)
    assert summary["paths"]["html"] == str(files.report_html)
    html = files.report_html.read_text()
    assert html.count('src="data:image/png;base64,') == 2
    assert "18-34" in html and "60+" in html
    for png in (files.shap_importance_png, files.shap_local_png):
        assert png.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"


def test_missing_attribute_is_said_plainly_and_nothing_is_invented(
    windows: Windows, trained: TrainResult, tmp_path
) -> None:
    test = windows.frames["test"].drop(columns="age_group")
    result = fairness.run_fairness(test, trained.booster, trained.threshold, "age_group")
    assert result.fairness_available is False
    assert result.fairness is None and result.equalized_odds_difference is None
    assert "no column 'age_group'" in result.note
    metrics = result.metrics()
    assert set(metrics) == {"fairness_available"} | {k for k in metrics if k.startswith("shap_")}
    html = render_fairness(result, tmp_path).report_html.read_text()
    assert "Not audited" in html and "no column" in html
    assert result.shap.importance, "explanations do not need the attribute"


def test_an_empty_attribute_name_skips_fairness(windows: Windows, trained: TrainResult) -> None:
    result = fairness.run_fairness(windows.frames["test"], trained.booster, trained.threshold, "")
    assert result.fairness_available is False and "no sensitive attribute" in result.note


def test_a_model_feature_cannot_be_the_sensitive_attribute(windows: Windows, trained: TrainResult) -> None:
    with pytest.raises(DataValidationError, match="is a model feature"):
        fairness.run_fairness(windows.frames["test"], trained.booster, trained.threshold, "Amount")


def test_missing_features_are_named(windows: Windows, trained: TrainResult) -> None:
    with pytest.raises(DataValidationError, match="V3"):
        fairness.run_fairness(windows.frames["test"].drop(columns="V3"), trained.booster, 0.5, "age_group")
