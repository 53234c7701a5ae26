"""The single-query window rule (``evaluate_one``, what the predictor computes) against the vectorised one.

Random entity histories on a coarse time grid, so events tie with each other, with the query and with the window
bounds; labels known before, at and after the query time; events handed in shuffled order to ``features_for``.
Counts, distinct counts, label counts and times must be identical; sums may differ only in the last bits.
"""

from __future__ import annotations

import numpy as np
import pytest

from fraud_detection.features.definitions import FeatureSet
from fraud_detection.features.online import EntityState, StoredEvent, Transaction, features_for
from fraud_detection.features.window import History, evaluate, evaluate_one
from tests.features.conftest import every_kind

GRID = 900.0
"""Event, label and query times are multiples of 15 minutes; every window of ``every_kind`` is a multiple too."""


def random_events(rng: np.random.Generator, n: int, query_time: float) -> list[StoredEvent]:
    """``n`` events of card ``c`` in the two days before ``query_time`` (and some at it), at a few terminals."""
    times = query_time - GRID * rng.integers(0, 2 * 96 + 8, size=n)
    label_times = times + GRID * rng.integers(0, 96, size=n)
    known = rng.random(n) < 0.7
    return [
        StoredEvent(
            tx_id=f"e{i}",
            event_time=float(times[i]),
            amount=float(np.round(rng.lognormal(3, 1), 2)),
            keys={"card": "c", "terminal": f"t{rng.integers(0, 4)}"},
            label=int(rng.random() < 0.3),
            label_time=float(label_times[i]) if known[i] else np.inf,
        )
        for i in range(n)
    ]


def vectorised(state: EntityState, query_time: float, amount: float, feature_set: FeatureSet) -> dict[str, float]:
    """The card's aggregates for one query by ``window.evaluate``, as the predictor computed them before."""
    aggregates = [a for a in feature_set.aggregates if a.entity == "card"]
    history = History.build(
        entity=np.zeros(len(state), dtype=np.int64),
        time=state.time,
        amount=state.amount,
        label=state.label,
        label_time=state.label_time,
        counterparty={"terminal": state.keys.get("terminal", np.zeros(len(state), dtype=np.int64))},
    )
    computed = evaluate(history, np.zeros(1, dtype=np.int64), np.array([query_time]), np.array([amount]), aggregates)
    return {name: float(values[0]) for name, values in computed.items()}


@pytest.mark.parametrize("seed", range(40))
def test_one_query_equals_the_vectorised_rule(seed: int) -> None:
    rng = np.random.default_rng(seed)
    feature_set = every_kind()
    query_time = 10 * 86_400.0 + GRID * int(rng.integers(0, 96))
    events = random_events(rng, int(rng.integers(0, 60)), query_time)
    state = EntityState.of(events)
    amount = float(rng.choice([0.0, 12.5, 400.0]))
    expected = vectorised(state, query_time, amount, feature_set)
    shuffled = EntityState.of([events[i] for i in rng.permutation(len(events))])
    transaction = Transaction(
        tx_id="q",
        event_time=query_time,
        amount=amount,
        keys={"card": "c", "terminal": "t0"},
        request={"oldbalanceOrg": 0.0, "newbalanceOrig": 0.0, "type": "PAYMENT"},
    )
    empty = EntityState.of([])
    for given in (state, shuffled):
        got = features_for(transaction, {"card": given, "terminal": empty}, feature_set)
        for name, value in expected.items():
            if "amount" in name:
                assert got[name] == pytest.approx(value, rel=1e-12, abs=1e-12), name
            else:
                assert got[name] == value, name


def test_bounds_are_half_open_and_labels_strictly_before() -> None:
    """An event at ``t - window`` counts, one at ``t`` does not; a label known at ``t`` is not yet known."""
    feature_set = every_kind()
    aggregates = [a for a in feature_set.aggregates if a.entity == "card"]
    t = 100_000.0
    time = [t - 3_600.0, t - 1.0, t]
    values = dict(
        zip(
            [a.name for a in aggregates],
            evaluate_one(
                time, [1.0, 2.0, 4.0], [1, 0, 1], [t - 5.0, t, t - 1.0], {"terminal": [1, 1, 2]}, (t, 3.0), aggregates
            ),
            strict=True,
        )
    )
    assert values["card_count_1h"] == 2.0
    assert values["card_amount_sum_6h"] == 3.0
    assert values["card_seconds_since_last_6h"] == 1.0
    assert values["card_distinct_terminal_6h"] == 1.0
    assert values["card_fraud_risk_2d"] == 1.0  # the fraud at t - 3600, known at t - 5; the other label at t is not
    assert values["card_amount_ratio_2d"] == 2.0
