"""A small raw transaction frame with ties in time and late, out-of-order labels; a real redis-server."""

from __future__ import annotations

from collections.abc import Iterator

import numpy as np
import pandas as pd
import pytest

from fraud_detection.features.definitions import (
    DAY,
    HOUR,
    Aggregate,
    BalanceError,
    FeatureSet,
    HourOfDay,
    Numeric,
    OneHot,
)
from tests.conftest import redis_server

TYPES = ("PAYMENT", "TRANSFER", "CASH_OUT")


def raw_frame(rows: int = 600, seed: int = 3) -> pd.DataFrame:
    """``rows`` transactions of 12 cards at 6 terminals over 4 days in the canonical frame.

    Times fall on 10-minute marks, so many share a time; labels arrive 0 to 3 days late, so out of event order.
    """
    rng = np.random.default_rng(seed)
    event_time = np.sort(rng.integers(0, 4 * 144, rows)) * 600.0
    delay = rng.choice([0.0, 600.0, 5 * HOUR, DAY, 3 * DAY], rows) + rng.integers(0, 3, rows) * 600.0
    old_balance = rng.gamma(2.0, 500.0, rows).round(2)
    amount = rng.gamma(2.0, 60.0, rows).round(2)
    return pd.DataFrame(
        {
            "tx_id": [f"tx{i:05d}" for i in range(rows)],
            "event_time": event_time,
            "seq": np.arange(rows, dtype=np.int64),
            "key_card": rng.choice([f"card{i}" for i in range(12)], rows),
            "key_terminal": rng.choice([f"term{i}" for i in range(6)], rows),
            "amount": amount,
            "label": (rng.random(rows) < 0.2).astype(np.int64),
            "label_time": event_time + delay,
            "oldbalanceOrg": old_balance,
            "newbalanceOrig": np.maximum(old_balance - amount * rng.choice([1.0, 0.0], rows), 0.0),
            "type": rng.choice(TYPES, rows),
        }
    )


def every_kind() -> FeatureSet:
    """Every aggregate kind and request feature, windows short enough that the 4 days fill and empty them."""
    card = [
        Aggregate(entity="card", aggregate="count", window=HOUR),
        Aggregate(entity="card", aggregate="count", window=DAY),
        Aggregate(entity="card", aggregate="sum", column="amount", window=6 * HOUR),
        Aggregate(entity="card", aggregate="mean", column="amount", window=DAY),
        Aggregate(entity="card", aggregate="amount_ratio", column="amount", window=2 * DAY),
        Aggregate(entity="card", aggregate="seconds_since_last", window=6 * HOUR),
        Aggregate(entity="card", aggregate="distinct", column="terminal", window=6 * HOUR),
        Aggregate(entity="card", aggregate="fraud_risk", window=2 * DAY),
    ]
    terminal = [
        Aggregate(entity="terminal", aggregate="count", window=HOUR),
        Aggregate(entity="terminal", aggregate="distinct", column="card", window=DAY),
        Aggregate(entity="terminal", aggregate="fraud_risk", window=DAY),
        Aggregate(entity="terminal", aggregate="fraud_risk", window=DAY, label_delay=6 * HOUR),
    ]
    request = (
        Numeric(column="amount"),
        BalanceError(name="orig_balance_error", before="oldbalanceOrg", after="newbalanceOrig", outgoing=True),
        HourOfDay(),
        OneHot(column="type", categories=TYPES),
    )
    return FeatureSet(aggregates=(*card, *terminal), request=request)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free 127.0.0.1 port, without persistence, for the module."""
    with redis_server() as url:
        yield url
