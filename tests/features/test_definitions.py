"""Definitions: stable names, a JSON round trip, clear errors; stores that cannot be reached say where."""

from __future__ import annotations

from pathlib import Path

import pytest
from pydantic import ValidationError

from fraud_detection.features.definitions import (
    DAY,
    HOUR,
    Aggregate,
    FeatureSet,
    Numeric,
    card_terminal_features,
    paysim_features,
)
from fraud_detection.features.offline import FrameError, compute_features
from fraud_detection.features.redis_store import RedisStateStore
from fraud_detection.features.store import SQLiteStateStore, StoreUnavailable
from tests.conftest import free_port
from tests.features.conftest import every_kind, raw_frame


def test_names_are_stable_and_say_what_they_compute() -> None:
    assert Aggregate(entity="card", aggregate="count", window=HOUR).name == "card_count_1h"
    assert Aggregate(entity="card", aggregate="mean", column="amount", window=7 * DAY).name == "card_amount_mean_7d"
    assert (
        Aggregate(entity="card", aggregate="distinct", column="terminal", window=DAY).name
        == "card_distinct_terminal_1d"
    )
    risk = Aggregate(entity="terminal", aggregate="fraud_risk", window=28 * DAY, label_delay=7 * DAY)
    assert risk.name == "terminal_fraud_risk_28d_delay_7d"
    assert risk.horizon == 35 * DAY


@pytest.mark.parametrize("feature_set", [card_terminal_features(), paysim_features(), every_kind()])
def test_a_feature_set_survives_a_json_round_trip(feature_set: FeatureSet) -> None:
    again = FeatureSet.from_json(feature_set.to_json())
    assert again == feature_set
    assert again.names == feature_set.names


def test_the_paysim_set_never_uses_the_flag_column() -> None:
    assert not any("isFlaggedFraud" in name for name in paysim_features().names)
    assert "orig_balance_error" in paysim_features().names and "type_is_TRANSFER" in paysim_features().names


@pytest.mark.parametrize(
    ("fields", "message"),
    [
        ({"entity": "card", "aggregate": "sum", "window": HOUR}, "needs column='amount'"),
        ({"entity": "card", "aggregate": "count", "column": "amount", "window": HOUR}, "takes no column"),
        ({"entity": "card", "aggregate": "distinct", "column": "card", "window": HOUR}, "another entity role"),
        ({"entity": "card", "aggregate": "count", "window": HOUR, "label_delay": HOUR}, "fraud_risk only"),
        ({"entity": "card", "aggregate": "count", "window": 0}, "greater than 0"),
        ({"entity": "shop", "aggregate": "count", "window": HOUR}, "entity"),
        ({"entity": "card", "aggregate": "median", "window": HOUR}, "aggregate"),
    ],
)
def test_a_bad_definition_is_refused_with_the_reason(fields: dict, message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Aggregate(**fields)


def test_a_feature_set_refuses_repeated_names_and_unknown_fields() -> None:
    count = Aggregate(entity="card", aggregate="count", window=HOUR)
    with pytest.raises(ValidationError, match="repeat"):
        FeatureSet(aggregates=(count, count))
    with pytest.raises(ValidationError, match="repeat"):
        FeatureSet(request=(Numeric(column="amount"), Numeric(column="amount")))
    with pytest.raises(ValidationError, match="windw"):
        FeatureSet.from_json('{"aggregates": [{"entity": "card", "aggregate": "count", "windw": 60}]}')


def test_a_frame_without_a_needed_key_is_refused_by_name() -> None:
    with pytest.raises(FrameError, match="key_terminal"):
        compute_features(raw_frame().drop(columns=["key_terminal"]), every_kind())


def test_a_redis_store_that_cannot_be_reached_names_its_address() -> None:
    port = free_port()
    store = RedisStateStore(f"redis://127.0.0.1:{port}/0", horizon=DAY, timeout=0.5)
    with pytest.raises(StoreUnavailable, match=f"127.0.0.1:{port}"):
        store.read({"card": "c1"})


def test_a_reader_of_a_missing_embedded_store_fails_instead_of_reading_nothing(tmp_path: Path) -> None:
    missing = tmp_path / "nowhere" / "state.db"
    with pytest.raises(StoreUnavailable, match="nowhere"):
        SQLiteStateStore(missing, horizon=DAY, readonly=True)
    with pytest.raises(StoreUnavailable, match="nowhere"):
        SQLiteStateStore(missing, horizon=DAY)


def test_a_reader_process_sees_what_the_writer_applied(tmp_path: Path) -> None:
    from fraud_detection.features.online import Transaction

    writer = SQLiteStateStore(tmp_path / "state.db", horizon=DAY)
    reader = SQLiteStateStore(tmp_path / "state.db", horizon=DAY, readonly=True)
    writer.apply(Transaction(tx_id="a", event_time=10.0, amount=5.0, keys={"card": "c1"}))
    writer.apply_label("a", 1, 20.0)
    (event,) = reader.read({"card": "c1"})["card"].events
    assert (event.tx_id, event.amount, event.label, event.label_time) == ("a", 5.0, 1, 20.0)
    writer.close()
    reader.close()
