"""The vectorised window arithmetic against a brute-force one, on the generator's data (ties, late labels).

The reference compares every pair of events of an entity (an ``n x n`` mask per entity), so it shares nothing
with ``window.py`` but the rule itself. It pins the offline values: any change to the algorithm must keep them.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_detection.features.definitions import DAY, HOUR, Aggregate, FeatureSet, card_terminal_features
from fraud_detection.features.offline import compute_features
from fraud_detection.features.window import History, evaluate, evaluate_events
from fraud_detection.transactions.contract import canonical
from fraud_detection.transactions.generator import TransactionConfig, generate
from fraud_detection.transactions.mapping import load_mapping
from tests.features.conftest import every_kind


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    raw = generate(TransactionConfig(n_rows=3_000, seed=12, days=10, label_delay_days=1.0))
    frame = canonical(raw, load_mapping("customer_terminal"))
    frame["event_time"] = np.floor(frame["event_time"] / 900.0) * 900.0  # 15-minute marks: ties in time
    frame["label_time"] = np.maximum(frame["label_time"], frame["event_time"])
    return frame


def brute_force(frame: pd.DataFrame, aggregate: Aggregate) -> np.ndarray:
    """One aggregate for every row from pairwise masks within each entity."""
    out = np.empty(len(frame))
    for _, rows in frame.groupby(f"key_{aggregate.entity}").indices.items():
        t = frame["event_time"].to_numpy()[rows]
        upper = t[:, None] - aggregate.label_delay
        inside = (t[None, :] >= upper - aggregate.window) & (t[None, :] < upper)  # [query, event]
        amount = frame["amount"].to_numpy()[rows]
        count = inside.sum(axis=1)
        total = (inside * amount[None, :]).sum(axis=1)
        average = np.divide(total, count, out=np.zeros(len(rows)), where=count > 0)
        kind = aggregate.aggregate
        if kind == "count":
            value = count.astype(float)
        elif kind == "sum":
            value = total
        elif kind == "mean":
            value = average
        elif kind == "amount_ratio":
            value = np.divide(amount, average, out=np.ones(len(rows)), where=average > 0)
        elif kind == "seconds_since_last":
            last = np.where(inside, t[None, :], -np.inf).max(axis=1)
            value = np.where(count > 0, t - last, aggregate.window)
        elif kind == "distinct":
            other = pd.factorize(frame[f"key_{aggregate.column}"].to_numpy()[rows])[0]
            value = np.array([len(set(other[mask])) for mask in inside], dtype=float)
        else:
            known = inside & (frame["label_time"].to_numpy()[rows][None, :] < t[:, None])
            frauds = (known * frame["label"].to_numpy()[rows][None, :]).sum(axis=1)
            value = np.divide(frauds, known.sum(axis=1), out=np.zeros(len(rows)), where=known.sum(axis=1) > 0)
        out[rows] = value
    return out


def test_the_frame_has_ties_and_late_out_of_order_labels(frame: pd.DataFrame) -> None:
    assert frame["event_time"].duplicated().sum() > 1_000
    assert (frame["label_time"] > frame["event_time"]).mean() > 0.9
    assert not frame["label_time"].is_monotonic_increasing


@pytest.mark.parametrize("feature_set", [card_terminal_features(), every_kind()], ids=["default", "every_kind"])
def test_offline_features_equal_the_brute_force(frame: pd.DataFrame, feature_set: FeatureSet) -> None:
    features = compute_features(frame, FeatureSet(aggregates=feature_set.aggregates))
    for aggregate in feature_set.aggregates:
        expected = brute_force(frame, aggregate)
        np.testing.assert_allclose(features[aggregate.name], expected, rtol=1e-9, atol=1e-9, err_msg=aggregate.name)
        if aggregate.aggregate in ("count", "distinct", "fraud_risk"):  # integers: exact
            np.testing.assert_array_equal(features[aggregate.name], expected, err_msg=aggregate.name)
    kinds = {a.name: a.aggregate for a in feature_set.aggregates}
    assert all((features[name] > 0).any() for name, kind in kinds.items() if kind == "fraud_risk")
    assert all((features[name] > 1).any() for name, kind in kinds.items() if kind == "distinct")


def test_queries_in_any_order_give_the_values_of_the_events_themselves(frame: pd.DataFrame) -> None:
    """``evaluate`` (outside queries, any order) equals ``evaluate_events`` (the events as their own queries)."""
    codes = {role: pd.factorize(frame[f"key_{role}"])[0].astype(np.int64) for role in ("card", "terminal")}
    aggregates = [a for a in every_kind().aggregates if a.entity == "card"]
    aggregates += [Aggregate(entity="card", aggregate="fraud_risk", window=DAY, label_delay=3 * HOUR)]
    history = History.build(
        entity=codes["card"],
        time=frame["event_time"].to_numpy(),
        amount=frame["amount"].to_numpy(),
        label=frame["label"].to_numpy(),
        label_time=frame["label_time"].to_numpy(),
        counterparty={"terminal": codes["terminal"]},
    )
    own = evaluate_events(history, aggregates)
    shuffle = np.random.default_rng(0).permutation(len(frame))
    outside = evaluate(history, history.entity[shuffle], history.time[shuffle], history.amount[shuffle], aggregates)
    for name, values in own.items():
        np.testing.assert_allclose(outside[name], values[shuffle], rtol=1e-12, atol=1e-9, err_msg=name)
