"""No leakage: nothing at or after a transaction's time, and no label not yet available, changes its features.

Seeded random trials: each picks a transaction, rewrites the frame around it, recomputes offline, and asserts
the picked transaction's features are bit for bit the same.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_detection.features.offline import compute_features
from tests.features.conftest import every_kind, raw_frame

TRIALS = 12


def canonical(frame: pd.DataFrame) -> pd.DataFrame:
    """Re-sort by event time (ties keep row order) and renumber ``seq``, as the contract requires."""
    frame = frame.sort_values("event_time", kind="stable").reset_index(drop=True)
    return frame.assign(seq=np.arange(len(frame), dtype=np.int64))


def features_of(frame: pd.DataFrame, tx_id: str) -> np.ndarray:
    features = compute_features(frame, every_kind())
    return features[frame["tx_id"] == tx_id].to_numpy()[0]


def later_rows(frame: pd.DataFrame, picked: int) -> pd.Series:
    """Rows at or after the picked row's time, itself excepted."""
    return (frame["event_time"] >= frame.loc[picked, "event_time"]) & (frame.index != picked)


def change(frame: pd.DataFrame, later: pd.Series, rng: np.random.Generator) -> pd.DataFrame:
    frame = frame.copy()
    count = int(later.sum())
    frame.loc[later, "amount"] = rng.gamma(2.0, 500.0, count)
    frame.loc[later, "key_card"] = rng.choice(frame["key_card"].unique(), count)
    frame.loc[later, "key_terminal"] = rng.choice(frame["key_terminal"].unique(), count)
    frame.loc[later, "label"] = 1 - frame.loc[later, "label"]
    frame.loc[later, "label_time"] = frame.loc[later, "event_time"]
    return frame


def shuffle(frame: pd.DataFrame, later: pd.Series, rng: np.random.Generator) -> pd.DataFrame:
    frame = frame.copy()
    frame.loc[later, "event_time"] = rng.permutation(frame.loc[later, "event_time"].to_numpy())
    frame.loc[later, "label_time"] = frame.loc[later, "event_time"] + rng.integers(0, 5, int(later.sum())) * 3_600.0
    return frame


def delete(frame: pd.DataFrame, later: pd.Series, rng: np.random.Generator) -> pd.DataFrame:
    dropped = later & (rng.random(len(frame)) < 0.6)
    return frame[~dropped]


@pytest.mark.parametrize("rewrite", [change, shuffle, delete])
def test_events_at_or_after_a_transaction_never_change_its_features(rewrite) -> None:  # type: ignore[no-untyped-def]
    rng = np.random.default_rng(2024)
    frame = raw_frame()
    baseline = compute_features(frame, every_kind()).to_numpy()
    for _ in range(TRIALS):
        picked = int(rng.integers(50, len(frame)))
        rewritten = canonical(rewrite(frame, later_rows(frame, picked), rng))
        assert rewritten["seq"].is_monotonic_increasing
        np.testing.assert_array_equal(features_of(rewritten, frame.loc[picked, "tx_id"]), baseline[picked])


def test_a_label_not_yet_available_never_changes_a_feature() -> None:
    rng = np.random.default_rng(7)
    frame = raw_frame()
    baseline = compute_features(frame, every_kind()).to_numpy()
    for _ in range(TRIALS):
        picked = int(rng.integers(50, len(frame)))
        t = frame.loc[picked, "event_time"]
        pending = frame["label_time"] >= t
        assert pending.sum() > 0
        rewritten = frame.copy()
        rewritten.loc[pending, "label"] = rng.integers(0, 2, int(pending.sum()))
        rewritten.loc[pending, "label_time"] = t + rng.integers(0, 4, int(pending.sum())) * 3_600.0
        rewritten.loc[pending, "label_time"] = np.maximum(rewritten.loc[pending, "label_time"], frame["event_time"])
        np.testing.assert_array_equal(features_of(rewritten, frame.loc[picked, "tx_id"]), baseline[picked])


def test_an_earlier_label_does_change_the_risk() -> None:
    """The leakage tests can fail: making a pending label known before ``t`` moves the terminal's fraud risk."""
    frame = raw_frame()
    baseline = compute_features(frame, every_kind())
    t = frame["event_time"].iloc[400]
    pending = (frame["label_time"] >= t) & (frame["event_time"] < t) & (frame["event_time"] >= t - 86_400)
    rewritten = frame.copy()
    rewritten.loc[pending, "label"] = 1
    rewritten.loc[pending, "label_time"] = rewritten.loc[pending, "event_time"]
    changed = compute_features(rewritten, every_kind())
    assert (changed["terminal_fraud_risk_1d"] != baseline["terminal_fraud_risk_1d"]).any()
