"""No skew: replaying the events in time order through each store gives exactly the offline features.

Each transaction's features are computed from ``read()`` before it is applied, labels are applied as their
``label_time`` passes (or early, where a test says so), and the stores are the embedded SQLite file and a real
redis-server. The offline values themselves are checked against a row-by-row reference.
"""

from __future__ import annotations

import uuid
from collections.abc import Callable, Iterator
from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_detection.features.definitions import Aggregate, FeatureSet
from fraud_detection.features.offline import compute_features
from fraud_detection.features.online import Transaction, features_for
from fraud_detection.features.redis_store import RedisStateStore
from fraud_detection.features.store import EntityStateStore, SQLiteStateStore
from tests.features.conftest import every_kind, raw_frame

REQUEST = ("oldbalanceOrg", "newbalanceOrig", "type")
StoreFactory = Callable[[], EntityStateStore]


def transaction_of(row: pd.Series) -> Transaction:
    """A frame row as the stream would receive it."""
    return Transaction(
        tx_id=row["tx_id"],
        event_time=float(row["event_time"]),
        amount=float(row["amount"]),
        keys={"card": row["key_card"], "terminal": row["key_terminal"]},
        request={column: row[column] for column in REQUEST},
    )


def replay(
    frame: pd.DataFrame,
    feature_set: FeatureSet,
    store: EntityStateStore,
    early: float = 0.0,
    restart: tuple[int, int] | None = None,
) -> pd.DataFrame:
    """Score then apply every row in ``seq`` order; labels are applied once ``label_time < t + early``.

    ``restart=(stop, back)``: after applying row ``stop`` the scorer dies before committing its last ``back``
    offsets; it restarts there, re-reading those rows (and every label from the start) and scoring them again.
    """
    labels = frame.sort_values("label_time", kind="stable")[["tx_id", "label", "label_time"]].to_numpy()
    rows = [transaction_of(row) for _, row in frame.iterrows()]
    order = list(range(len(rows)))
    if restart is not None:
        stop, back = restart
        order = order[: stop + 1] + order[stop + 1 - back :]
    scored: dict[str, dict[str, float]] = {}
    next_label = 0
    for position, index in enumerate(order):
        if restart is not None and position == restart[0] + 1:
            next_label = 0
        transaction = rows[index]
        while next_label < len(labels) and labels[next_label][2] < transaction.event_time + early:
            tx_id, label, label_time = labels[next_label]
            store.apply_label(str(tx_id), int(label), float(label_time))
            next_label += 1
        states = store.read(transaction.keys)
        scored[transaction.tx_id] = features_for(transaction, states, feature_set)
        store.apply(transaction)
    return pd.DataFrame([scored[tx_id] for tx_id in frame["tx_id"]], index=frame.index)


@pytest.fixture(params=["sqlite", "redis"])
def make_store(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[StoreFactory]:
    """A factory of fresh stores of one kind (each Redis store under its own prefix)."""
    made: list[EntityStateStore] = []
    horizon = every_kind().horizon

    def factory() -> EntityStateStore:
        if request.param == "sqlite":
            store: EntityStateStore = SQLiteStateStore(tmp_path / f"{uuid.uuid4().hex}.db", horizon=horizon)
        else:
            url = request.getfixturevalue("redis_url")
            store = RedisStateStore(url, horizon=horizon, prefix=f"test:{uuid.uuid4().hex}")
        made.append(store)
        return store

    yield factory
    for store in made:
        store.close()


@pytest.fixture(scope="module")
def frame() -> pd.DataFrame:
    return raw_frame()


@pytest.fixture(scope="module")
def offline(frame: pd.DataFrame) -> pd.DataFrame:
    return compute_features(frame, every_kind())


def assert_same(online: pd.DataFrame, offline: pd.DataFrame) -> None:
    np.testing.assert_allclose(online[offline.columns].to_numpy(), offline.to_numpy(), rtol=1e-9, atol=1e-9)


def test_the_frame_has_ties_and_late_out_of_order_labels(frame: pd.DataFrame) -> None:
    assert frame["event_time"].duplicated().sum() > 100
    assert (frame["label_time"] > frame["event_time"]).mean() > 0.5
    assert not frame["label_time"].is_monotonic_increasing


def test_a_replay_through_the_store_gives_the_offline_features(
    make_store: StoreFactory, frame: pd.DataFrame, offline: pd.DataFrame
) -> None:
    assert_same(replay(frame, every_kind(), make_store()), offline)


def test_labels_delivered_before_their_time_change_no_online_feature(
    make_store: StoreFactory, frame: pd.DataFrame, offline: pd.DataFrame
) -> None:
    assert_same(replay(frame, every_kind(), make_store(), early=2 * 86_400.0), offline)


def test_a_scorer_killed_before_its_offset_commit_scores_the_redelivered_rows_the_same(
    make_store: StoreFactory, frame: pd.DataFrame, offline: pd.DataFrame
) -> None:
    assert_same(replay(frame, every_kind(), make_store(), restart=(400, 60)), offline)


def test_applying_a_transaction_twice_changes_nothing(make_store: StoreFactory, frame: pd.DataFrame) -> None:
    store = make_store()
    first, second = (transaction_of(row) for _, row in frame.head(2).iterrows())
    assert store.apply(first) is True
    before = store.read(first.keys)
    assert store.apply(first) is False
    assert store.read(first.keys) == before
    assert store.apply(second) is True


def _reference(frame: pd.DataFrame, row: pd.Series, aggregate: Aggregate) -> float:
    """One feature of one row by filtering the frame: the point-in-time rule written as plainly as possible."""
    t, entity = row["event_time"], f"key_{aggregate.entity}"
    upper = t - aggregate.label_delay
    past = frame[(frame[entity] == row[entity]) & (frame["event_time"] >= upper - aggregate.window)]
    past = past[past["event_time"] < upper]
    kind = aggregate.aggregate
    if kind == "count":
        return float(len(past))
    if kind == "sum":
        return float(past["amount"].sum())
    if kind == "mean":
        return float(past["amount"].mean()) if len(past) else 0.0
    if kind == "amount_ratio":
        average = past["amount"].mean() if len(past) else 0.0
        return float(row["amount"] / average) if average > 0 else 1.0
    if kind == "seconds_since_last":
        return float(t - past["event_time"].max()) if len(past) else aggregate.window
    if kind == "distinct":
        return float(past[f"key_{aggregate.column}"].nunique())
    known = past[past["label_time"] < t]
    return float(known["label"].mean()) if len(known) else 0.0


def test_offline_features_equal_a_row_by_row_reference() -> None:
    frame = raw_frame(rows=250, seed=11)
    feature_set = every_kind()
    features = compute_features(frame, feature_set)
    for aggregate in feature_set.aggregates:
        expected = [_reference(frame, row, aggregate) for _, row in frame.iterrows()]
        np.testing.assert_allclose(features[aggregate.name], expected, rtol=1e-12, atol=1e-9, err_msg=aggregate.name)
    assert (features["card_count_1d"] > 0).any() and (features["terminal_fraud_risk_1d"] > 0).any()
    expected_error = frame["newbalanceOrig"] + frame["amount"] - frame["oldbalanceOrg"]
    np.testing.assert_allclose(features["orig_balance_error"], expected_error)
    np.testing.assert_array_equal(features["type_is_TRANSFER"], (frame["type"] == "TRANSFER").astype(float))
    np.testing.assert_array_equal(features["hour_of_day"], (frame["event_time"] % 86_400) // 3_600)
