"""The generator's fraud lives in history: a quick model gains at least 1.5x AUPRC from simple history aggregates.

The aggregates are computed here, plainly and point in time (only events strictly before a transaction, and
labels only once known), so this de-risks the quality target of the feature work without depending on it.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from sklearn.ensemble import HistGradientBoostingClassifier
from sklearn.metrics import average_precision_score

from fraud_detection.transactions import generator
from fraud_detection.transactions.contract import canonical
from fraud_detection.transactions.frame import AMOUNT, EVENT_TIME, LABEL, LABEL_TIME, key_column
from fraud_detection.transactions.mapping import load_mapping

DAY = 86_400.0


def before(
    event_entity: np.ndarray, event_time: np.ndarray, values: np.ndarray, entity: np.ndarray, time: np.ndarray
) -> tuple[np.ndarray, np.ndarray]:
    """For each query (entity, time): the count and the sum of ``values`` of that entity's events strictly earlier."""
    scale = float(max(event_time.max(), time.max())) + 2.0
    key = event_entity * scale + event_time
    order = np.argsort(key, kind="stable")
    sorted_key = key[order]
    sums = np.concatenate(([0.0], np.cumsum(values[order])))
    high = np.searchsorted(sorted_key, entity * scale + time, side="left")
    low = np.searchsorted(sorted_key, entity * scale - 1.0, side="left")
    return (high - low).astype(np.float64), sums[high] - sums[low]


def own_columns(frame: pd.DataFrame) -> pd.DataFrame:
    return pd.DataFrame(
        {
            "amount": frame[AMOUNT],
            "hour": (frame[EVENT_TIME] / 3600.0) % 24.0,
            "channel": pd.Categorical(frame["channel"], categories=generator.CHANNELS).codes,
        }
    )


def with_history(frame: pd.DataFrame) -> pd.DataFrame:
    """Own columns plus terminal and card aggregates from strictly earlier events and already known labels."""
    time = frame[EVENT_TIME].to_numpy()
    amount = frame[AMOUNT].to_numpy()
    terminal = pd.factorize(frame[key_column("terminal")])[0].astype(np.float64)
    card = pd.factorize(frame[key_column("card")])[0].astype(np.float64)
    fraud = frame[LABEL].to_numpy() == 1
    ones = np.ones(len(frame))
    out = own_columns(frame)
    known, _ = before(terminal[fraud], frame[LABEL_TIME].to_numpy()[fraud], ones[fraud], terminal, time)
    old, _ = before(terminal[fraud], time[fraud], ones[fraud], terminal, time - 28 * DAY)
    out["terminal_known_frauds_28d"] = known - old
    count, total = before(card, time, amount, card, time)
    out["card_amount_vs_mean"] = np.where(count > 0, amount / np.maximum(total / np.maximum(count, 1), 0.01), np.nan)
    recent, _ = before(card, time, ones, card, time)
    earlier, _ = before(card, time, ones, card, time - 3600.0)
    out["card_count_1h"] = recent - earlier
    return out


def test_aggregates_see_only_strictly_earlier_events() -> None:
    entity = np.array([0.0, 0.0, 0.0, 1.0])
    time = np.array([10.0, 10.0, 20.0, 5.0])
    count, total = before(entity, time, np.array([1.0, 2.0, 4.0, 8.0]), entity, time)
    assert count.tolist() == [0, 0, 2, 0]
    assert total.tolist() == [0, 0, 3, 0]


@pytest.mark.slow
def test_history_lifts_auprc_at_least_one_and_a_half_times() -> None:
    raw, truth = generator.generate_with_truth(generator.TransactionConfig(seed=3))
    frame = canonical(raw, load_mapping("customer_terminal"))
    assert (frame["tx_id"].to_numpy() == raw["tx_id"].to_numpy()).all()  # already in time order: truth aligns
    train = (frame[EVENT_TIME] < 42 * DAY).to_numpy()
    test = ~train
    label = frame[LABEL].to_numpy()
    scores = {}
    for name, features in (("own", own_columns(frame)), ("history", with_history(frame))):
        model = HistGradientBoostingClassifier(max_iter=150, learning_rate=0.1, random_state=0)
        model.fit(features[train], label[train])
        scores[name] = average_precision_score(label[test], model.predict_proba(features[test])[:, 1])
    best = average_precision_score(label[test], truth.probability[test])
    print(f"test AUPRC: own columns {scores['own']:.3f}, with history {scores['history']:.3f}, true p {best:.3f}")
    assert scores["history"] >= 1.5 * scores["own"], scores
