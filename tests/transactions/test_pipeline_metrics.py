"""Card precision@k per day (the Fraud Detection Handbook's measure), on cases small enough to count by hand."""

from __future__ import annotations

import numpy as np
import pytest

from fraud_detection.metrics import DAY_SECONDS, card_precision_at_k

# Day 0: card a scores 0.9 (fraud) and 0.3, b 0.8 (legitimate), c 0.1 (fraud).
# Day 1: card a scores 0.2 (legitimate), d 0.7 (fraud).
CARD = np.array(["a", "b", "c", "a", "a", "d"])
TIME = np.array([10.0, 20.0, 30.0, 40.0, DAY_SECONDS + 5, DAY_SECONDS + 6])
LABEL = np.array([1, 0, 1, 0, 0, 1])
SCORE = np.array([0.9, 0.8, 0.1, 0.3, 0.2, 0.7])


@pytest.mark.parametrize(
    ("k", "expected"),
    [
        (1, (1 / 1 + 1 / 1) / 2),  # day 0: a (fraud); day 1: d (fraud)
        (2, (1 / 2 + 1 / 2) / 2),  # day 0: a, b; day 1: d, a
        (3, (2 / 3 + 1 / 3) / 2),  # day 0: a, b, c; day 1: only two cards, still divided by 3
    ],
)
def test_card_precision_counts_each_days_top_k_cards_by_their_highest_score(k: int, expected: float) -> None:
    assert card_precision_at_k(CARD, TIME, LABEL, SCORE, k) == pytest.approx(expected)


def test_a_card_counts_once_a_day_by_its_highest_score_and_any_fraud_that_day() -> None:
    # card a's fraud (0.9) and legitimate (0.3) payments on day 0 make one card, compromised, at 0.9
    card, time = np.array(["a", "a", "b"]), np.array([1.0, 2.0, 3.0])
    assert card_precision_at_k(card, time, np.array([0, 1, 0]), np.array([0.9, 0.1, 0.5]), 1) == 1.0
    assert card_precision_at_k(card, time, np.array([0, 0, 1]), np.array([0.9, 0.1, 0.5]), 1) == 0.0


def test_card_precision_rejects_a_k_below_one_and_mismatched_lengths() -> None:
    with pytest.raises(ValueError, match="k must be at least 1"):
        card_precision_at_k(CARD, TIME, LABEL, SCORE, 0)
    with pytest.raises(ValueError, match="one value per transaction"):
        card_precision_at_k(CARD[:-1], TIME, LABEL, SCORE, 2)
