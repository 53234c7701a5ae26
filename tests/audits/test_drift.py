"""Drift: the generator's drift is found, its absence is not, and Time / label / attribute never count.

Evidently takes several seconds to import and run, so the tests that run it are marked slow.
"""

from __future__ import annotations

import json

import pytest

from fraud_detection.audits import drift
from fraud_detection.boosting import TrainParams, train_booster
from fraud_detection.reports.drift import render_drift
from fraud_detection.schema import DataValidationError
from tests.audits.conftest import FAST_PARAMS, Windows, make_windows

DRIFTED = {"V1", "V2", "V5", "V8", "Amount"}
"""The columns SyntheticConfig(drift=...) moves after 90 % of the time axis."""


def test_params_are_checked() -> None:
    with pytest.raises(ValueError, match="share_threshold"):
        drift.DriftParams(share_threshold=0.0)
    with pytest.raises(ValueError, match="reference_rows"):
        drift.DriftParams(reference_rows=5)


def test_missing_feature_is_named(windows: Windows) -> None:
    with pytest.raises(DataValidationError, match=r"current window is missing feature column\(s\) \['V7'\]"):
        drift.run_drift(windows.frames["train"], windows.frames["current"].drop(columns="V7"))


def test_tiny_window_is_refused(windows: Windows) -> None:
    with pytest.raises(DataValidationError, match="at least 30"):
        drift.run_drift(windows.frames["train"], windows.frames["current"].head(5))


def _check(windows: Windows, tmp_path, expect_drift: bool, params: TrainParams = FAST_PARAMS) -> drift.DriftResult:
    model = train_booster(
        windows.x["train"], windows.y["train"], windows.x["validation"], windows.y["validation"], params, 0
    )
    result = drift.run_drift(windows.frames["train"], windows.frames["current"], booster=model.booster)
    assert result.drifted is expect_drift
    assert set(result.columns) == set(drift.FEATURES)
    assert {"Time", "Class", "age_group"} <= set(result.excluded_columns)
    assert result.score_drift is not None
    if expect_drift:
        assert set(result.drifted_features) == DRIFTED
        assert result.drift_share == pytest.approx(len(DRIFTED) / 29)
    else:
        assert result.drifted_features == [] and result.drift_share == 0.0
        assert result.score_drifted is False
    files = render_drift(result, tmp_path)
    summary = json.loads(files.summary_json.read_text())
    assert summary["drift_share"] == result.drift_share and summary["drifted"] is expect_drift
    assert summary["columns"]["V1"]["score"] == result.columns["V1"].score
    html = files.report_html.read_text()
    assert "<script" in html and 'src="http' not in html
    return result


@pytest.mark.slow
@pytest.mark.parametrize("strength", [0.0, 1.0])
def test_generator_drift_is_detected_only_when_on_small(strength: float, tmp_path) -> None:
    _check(make_windows(60_000, seed=5, drift=strength), tmp_path, expect_drift=strength > 0)


@pytest.mark.slow
@pytest.mark.parametrize("strength", [0.0, 1.0])
def test_generator_drift_is_detected_only_when_on_default_rows(strength: float, tmp_path) -> None:
    """The default 284,807 rows (the generator's default seed), as `make run` uses them."""
    from fraud_detection.synth import SyntheticConfig

    default = SyntheticConfig()
    windows = make_windows(default.n_rows, seed=default.seed, drift=strength)
    _check(windows, tmp_path, expect_drift=strength > 0, params=TrainParams(n_rounds=25, nthread=1))


@pytest.mark.slow
def test_time_label_and_attribute_never_count() -> None:
    """Shift Time, flip every label and change the attribute in the current window: still no drift."""
    windows = make_windows(60_000, seed=5, drift=0.0)
    current = windows.frames["current"].copy()
    current["Time"] = current["Time"] + 10_000_000.0
    current["Class"] = 1
    current["age_group"] = "60+"
    result = drift.run_drift(windows.frames["train"], current)
    assert result.drifted is False and result.drift_share == 0.0
    assert result.score_drifted is None and "score_drift" not in result.metrics(), "no booster, no score comparison"
