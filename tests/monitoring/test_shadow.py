"""The shadow comparison: a paired, stratified bootstrap of the AUPRC difference challenger − champion."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_detection.monitoring import shadow


def _scores(n: int, seed: int, noise_champion: float, noise_challenger: float) -> tuple[np.ndarray, ...]:
    rng = np.random.default_rng(seed)
    signal = rng.normal(size=n)
    outcome = (signal + rng.normal(scale=0.5, size=n) > 2.3).astype(int)
    champion = signal + rng.normal(scale=noise_champion, size=n)
    challenger = signal + rng.normal(scale=noise_challenger, size=n)
    return outcome, champion, challenger


def test_a_clearly_better_challenger_wins_with_confidence() -> None:
    found = shadow.compare(*_scores(5000, 0, noise_champion=1.5, noise_challenger=0.2), resamples=300)
    assert found.challenger_wins
    assert found.low > 0 and found.low <= found.difference <= found.high


def test_an_equal_challenger_does_not_win() -> None:
    outcome, champion, _ = _scores(5000, 1, 1.0, 1.0)
    found = shadow.compare(outcome, champion, champion.copy(), resamples=200)
    assert found.difference == 0 and not found.challenger_wins


def test_a_worse_challenger_does_not_win() -> None:
    found = shadow.compare(*_scores(5000, 2, noise_champion=0.2, noise_challenger=1.5), resamples=200)
    assert found.high < 0 and not found.challenger_wins


def test_a_slightly_better_challenger_on_little_data_does_not_win_with_confidence() -> None:
    found = shadow.compare(*_scores(400, 3, noise_champion=0.55, noise_challenger=0.5), resamples=300)
    assert found.low < 0 < found.high and not found.challenger_wins


def test_without_any_fraud_there_is_nothing_to_compare() -> None:
    with pytest.raises(ValueError, match="no fraud"):
        shadow.compare(np.zeros(10, dtype=int), np.random.rand(10), np.random.rand(10))


def test_pairs_are_the_transactions_both_endpoints_scored() -> None:
    matured = pd.DataFrame(
        {
            "tx_id": ["a", "a", "b", "c", "c"],
            "endpoint": ["default", "shadow", "default", "default", "shadow"],
            "model_version": ["3", "4", "3", "3", "4"],
            "probability": [0.1, 0.2, 0.3, 0.9, 0.8],
            "outcome": [0, 0, 1, 1, 1],
        }
    )
    found = shadow.pairs(matured)
    assert found.index.tolist() == ["a", "c"]
    assert found["champion"].tolist() == [0.1, 0.9] and found["challenger"].tolist() == [0.2, 0.8]
    assert set(zip(found["champion_version"], found["challenger_version"], strict=True)) == {("3", "4")}


def test_each_challenger_version_is_judged_on_its_own_pairs() -> None:
    outcome, champion, better = _scores(4000, 4, noise_champion=1.5, noise_challenger=0.2)
    _, _, worse = _scores(4000, 4, noise_champion=1.5, noise_challenger=3.0)
    half = len(outcome) // 2
    paired = pd.DataFrame(
        {
            "outcome": outcome,
            "champion": champion,
            "challenger": np.concatenate([worse[:half], better[half:]]),
            "champion_version": "3",
            "challenger_version": ["4"] * half + ["5"] * (len(outcome) - half),
        }
    )
    found = shadow.compare_versions(paired, resamples=200)
    assert set(found) == {("3", "4"), ("3", "5")}
    assert not found[("3", "4")].challenger_wins and found[("3", "5")].challenger_wins
