"""The transaction generator: schema, determinism, fraud rate, its three history patterns, delays and the truth."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_detection.transactions.contract import canonical
from fraud_detection.transactions.generator import (
    CHANNELS,
    PATTERNS,
    TransactionConfig,
    Truth,
    generate,
    generate_with_truth,
)
from fraud_detection.transactions.mapping import load_mapping

DAY = 86_400.0


@pytest.fixture(scope="module")
def generated() -> tuple[pd.DataFrame, Truth]:
    """The default size (200,000 rows over 60 days), made in well under a second."""
    return generate_with_truth(TransactionConfig(seed=11))


def test_the_schema_is_the_customer_terminal_mapping_and_no_truth_column(generated: tuple[pd.DataFrame, Truth]) -> None:
    frame, truth = generated
    assert sorted(frame.columns) == sorted(column for _, column in load_mapping("customer_terminal").sources())
    assert not any("prob" in column or "pattern" in column for column in frame.columns)
    assert len(frame) == 200_000 and truth.probability.shape == truth.pattern.shape == (200_000,)
    assert frame["tx_time"].is_monotonic_increasing
    assert frame["tx_time"].duplicated().any()  # whole seconds: some payments share a time
    assert set(frame["channel"].unique()) == set(CHANNELS)
    assert len(canonical(frame, load_mapping("customer_terminal"))) == len(frame)


def test_same_seed_same_data_other_seed_other_data() -> None:
    small = TransactionConfig(n_rows=3_000, seed=1)
    a, truth_a = generate_with_truth(small)
    b, truth_b = generate_with_truth(small)
    pd.testing.assert_frame_equal(a, b)
    assert np.array_equal(truth_a.probability, truth_b.probability)
    c = generate(TransactionConfig(n_rows=3_000, seed=2))
    assert not a["amount"].equals(c["amount"])


def test_the_fraud_rate_is_half_to_one_percent(generated: tuple[pd.DataFrame, Truth]) -> None:
    assert 0.005 <= generated[0]["is_fraud"].mean() <= 0.01


def test_labels_follow_the_true_probability_and_each_pattern_makes_fraud(generated: tuple[pd.DataFrame, Truth]) -> None:
    frame, truth = generated
    label = frame["is_fraud"].to_numpy()
    expected, observed = truth.probability.sum(), label.sum()
    assert abs(observed - expected) < 4 * np.sqrt(expected)
    outside = label[truth.pattern < 0].mean()
    assert outside < 0.001
    for index, name in enumerate(PATTERNS):
        inside = label[truth.pattern == index]
        assert inside.sum() >= 100, name
        assert inside.mean() > 200 * outside, name


def test_takeovers_spend_far_above_the_cards_habit(generated: tuple[pd.DataFrame, Truth]) -> None:
    frame, truth = generated
    takeover = truth.pattern == PATTERNS.index("takeover")
    habit = frame[truth.pattern < 0].groupby("customer_id")["amount"].median()
    ratio = frame.loc[takeover, "amount"].to_numpy() / habit.reindex(frame.loc[takeover, "customer_id"]).to_numpy()
    assert np.nanmedian(ratio) > 4.0


def test_card_testing_comes_in_bursts_of_small_online_payments(generated: tuple[pd.DataFrame, Truth]) -> None:
    frame, truth = generated
    testing = frame[truth.pattern == PATTERNS.index("card_testing")]
    assert testing["amount"].between(0.5, 3.0).all()
    assert (testing["channel"] == "online").mean() > 0.9
    gaps = testing.groupby("customer_id")["tx_time"].diff().dropna()
    assert gaps.median() < 300.0  # minutes apart on the same card


def test_a_compromised_terminal_defrauds_whoever_pays_there(generated: tuple[pd.DataFrame, Truth]) -> None:
    frame, truth = generated
    assert truth.pattern.dtype == np.int8
    spell = frame[truth.pattern == PATTERNS.index("terminal")]
    assert spell["terminal_id"].nunique() >= 5
    assert spell.groupby("terminal_id")["customer_id"].nunique().median() > 5
    assert 0.25 < spell["is_fraud"].mean() < 0.4  # compromise_fraud (0.3), plus the rare other frauds


def test_labels_arrive_about_seven_days_later_for_fraud_and_legitimate_rows(
    generated: tuple[pd.DataFrame, Truth],
) -> None:
    frame, _ = generated
    delay = (frame["label_time"] - frame["tx_time"]) / DAY
    assert (delay >= 1 / 24).all()
    for label in (0, 1):
        mean = delay[frame["is_fraud"] == label].mean()
        assert 6.8 < mean < 7.2, (label, mean)
    assert 0.8 < delay.std() < 1.2


def test_the_best_achievable_score_counts_a_compromise_only_once_one_of_its_fraud_labels_is_known(
    generated: tuple[pd.DataFrame, Truth],
) -> None:
    frame, truth = generated
    assert (truth.knowable <= truth.probability + 1e-12).all()  # it only ever knows less
    assert truth.knowable.shape == truth.probability.shape
    terminal = truth.pattern == PATTERNS.index("terminal")
    assert np.array_equal(truth.knowable[truth.pattern < 0], truth.probability[truth.pattern < 0])
    shown = terminal & (truth.knowable > 0.25)
    # every row it scores as compromised comes after a fraud at that terminal, in the spell, whose label was known
    rows = frame.loc[shown, ["tx_id", "terminal_id", "tx_time"]]
    frauds = frame.loc[frame["is_fraud"] == 1, ["terminal_id", "tx_time", "label_time"]]
    pairs = rows.merge(frauds, on="terminal_id", suffixes=("", "_fraud"))
    known = pairs[(pairs["label_time"] < pairs["tx_time"]) & (pairs["tx_time"] - pairs["tx_time_fraud"] < 28 * DAY)]
    assert set(known["tx_id"]) == set(rows["tx_id"])
    # a spell's first week or so shows nowhere; most of the rest does
    share = frame.loc[terminal, "is_fraud"].to_numpy()[shown[terminal]].sum() / frame.loc[terminal, "is_fraud"].sum()
    assert 0.3 < share < 0.9, share


def test_payments_follow_a_daily_cycle(generated: tuple[pd.DataFrame, Truth]) -> None:
    hour = ((generated[0]["tx_time"] / 3600.0) % 24.0).astype(int)
    counts = hour.value_counts()
    assert counts[15] > 4 * counts[3]


@pytest.mark.parametrize(
    "knobs, message",
    [
        ({"n_rows": 10}, "n_rows must be at least 100"),
        ({"days": 0}, "days must be at least 1"),
        ({"compromise_fraud": 1.5}, r"compromise_fraud must be within \[0, 1\]"),
        ({"takeover_days": -1.0}, "takeover_days must be >= 0"),
    ],
)
def test_bad_knobs_are_refused(knobs: dict[str, float], message: str) -> None:
    with pytest.raises(ValueError, match=message):
        TransactionConfig(**knobs)  # type: ignore[arg-type]


def test_with_every_pattern_off_only_the_rare_unexplained_fraud_remains() -> None:
    quiet = TransactionConfig(n_rows=2_000, compromise_rate=0.0, takeover_share=0.0, testing_bursts_per_100k=0.0)
    frame, truth = generate_with_truth(quiet)
    assert len(frame) == 2_000
    assert (truth.pattern == -1).all()
    assert np.allclose(truth.probability, quiet.base_fraud)
    assert np.allclose(truth.knowable, quiet.base_fraud)
