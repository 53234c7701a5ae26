"""The synthetic generator: schema, determinism, imbalance, groups, drift, and the exact true probability."""

from __future__ import annotations

import numpy as np
import pytest

from fraud_detection import synth
from fraud_detection.schema import FEATURES, LABEL, REQUIRED_COLUMNS, TIME


def test_schema_and_no_truth_column(small_frame):
    assert list(small_frame.columns) == [*REQUIRED_COLUMNS, "age_group"]
    assert not any("prob" in c.lower() for c in small_frame.columns)
    assert small_frame[TIME].is_monotonic_increasing
    assert (small_frame["Amount"] >= 0).all()
    assert set(small_frame[LABEL].unique()) == {0, 1}


def test_same_seed_same_data_other_seed_other_data():
    a = synth.generate(synth.SyntheticConfig(n_rows=5_000, seed=1))
    b = synth.generate(synth.SyntheticConfig(n_rows=5_000, seed=1))
    c = synth.generate(synth.SyntheticConfig(n_rows=5_000, seed=2))
    assert a.equals(b)
    assert not a[list(FEATURES)].equals(c[list(FEATURES)])


def test_fraud_rate_is_realistic(small_frame):
    assert 0.0012 < small_frame[LABEL].mean() < 0.0035


def test_true_probability_matches_label_frequency(small_frame):
    p = synth.true_probability(small_frame)
    assert p.shape == (len(small_frame),)
    assert ((p >= 0) & (p <= 1)).all()
    # Labels are Bernoulli(p): expected fraud count is close to the observed one.
    expected, observed = p.sum(), small_frame[LABEL].sum()
    assert abs(observed - expected) < 4 * np.sqrt(expected)
    # Fraud rows get much higher true probability than legitimate rows.
    assert p[small_frame[LABEL] == 1].mean() > 50 * p[small_frame[LABEL] == 0].mean()


def test_true_probability_uses_model_features_only(small_frame):
    shuffled = small_frame.copy()
    shuffled["age_group"] = shuffled["age_group"].sample(frac=1.0, random_state=0).to_numpy()
    shuffled[TIME] = 0.0
    assert np.array_equal(synth.true_probability(shuffled), synth.true_probability(small_frame))


def test_true_probability_rejects_wrong_shape():
    with pytest.raises(ValueError, match=r"expected shape \(n, 29\)"):
        synth.true_probability(np.zeros((3, 5)))


def test_groups_really_differ(small_frame):
    by_group = small_frame.groupby("age_group", observed=True)
    amounts = by_group["Amount"].median()
    assert amounts["60+"] > amounts["35-59"] > amounts["18-34"]
    v3 = by_group["V3"].mean()
    assert v3["60+"] - v3["35-59"] > 0.3


def test_daily_cycle():
    frame = synth.generate(synth.SyntheticConfig(n_rows=50_000, seed=3))
    hours = ((frame[TIME] / 3600) % 24).astype(int)
    counts = hours.value_counts()
    assert counts[15] > 3 * counts[3]


def test_drift_moves_only_the_latest_window():
    base = synth.generate(synth.SyntheticConfig(n_rows=30_000, seed=5))
    drifted = synth.generate(synth.SyntheticConfig(n_rows=30_000, seed=5, drift=1.0))
    early = slice(0, 20_000)
    late = slice(28_000, 30_000)
    assert np.allclose(base["V1"].iloc[early], drifted["V1"].iloc[early])
    assert drifted["V1"].iloc[late].mean() - base["V1"].iloc[late].mean() > 1.0


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"n_rows": 0}, "n_rows"),
        ({"drift": -1.0}, "drift"),
        ({"label_noise": 1.0}, "label_noise"),
        ({"drift_start": 2.0}, "drift_start"),
    ],
)
def test_config_rejects_nonsense(kwargs, message):
    with pytest.raises(ValueError, match=message):
        synth.SyntheticConfig(**kwargs)


def test_the_rotated_setting_hides_fraud_in_oblique_corners():
    frame = synth.generate(synth.SyntheticConfig(n_rows=60_000, seed=4, setting="rotated"))
    assert 0.0012 < frame[LABEL].mean() < 0.0035
    p = synth.true_probability(frame, setting="rotated")
    expected, observed = p.sum(), frame[LABEL].sum()
    assert abs(observed - expected) < 4 * np.sqrt(expected)
    # the axis setting's regions do not explain these labels; the rotated ones do
    assert p[frame[LABEL] == 1].mean() > 0.5 > synth.true_probability(frame)[frame[LABEL] == 1].mean()
    # no single feature separates fraud the way the axis setting's V14 or V17 do: every standardised
    # difference of means stays under 1.5 standard deviations of the legitimate rows
    fraud, legit = frame[frame[LABEL] == 1], frame[frame[LABEL] == 0]
    v = [f"V{i}" for i in range(1, 29)]
    gap = ((fraud[v].mean() - legit[v].mean()).abs() / legit[v].std()).max()
    assert gap < 1.5


def test_an_unknown_setting_is_refused():
    with pytest.raises(ValueError, match="setting must be one of axis, rotated, got 'diagonal'"):
        synth.SyntheticConfig(setting="diagonal")
    with pytest.raises(ValueError, match="setting must be one of axis, rotated"):
        synth.true_probability(np.zeros((2, 29)), setting="diagonal")
