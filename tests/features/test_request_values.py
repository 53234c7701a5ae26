"""One transaction's request features in plain Python equal the vectorised ones, bit for bit."""

from __future__ import annotations

import math

import numpy as np
import pytest

from fraud_detection.features.definitions import BalanceError, HourOfDay, Numeric, OneHot
from fraud_detection.features.request import MissingColumnError, from_mapping, request_features, request_values

FEATURES = (
    Numeric(column="amount"),
    Numeric(column="oldbalanceOrg"),
    BalanceError(name="orig_balance_error", before="oldbalanceOrg", after="newbalanceOrig", outgoing=True),
    BalanceError(name="dest_balance_error", before="oldbalanceDest", after="newbalanceDest", outgoing=False),
    HourOfDay(),
    OneHot(column="type", categories=("PAYMENT", "TRANSFER", "CASH_OUT")),
)


def test_plain_python_request_features_equal_the_vectorised_ones_bit_for_bit() -> None:
    rng = np.random.default_rng(11)
    checked = 0
    for _ in range(3_000):
        scale = 10.0 ** rng.integers(-3, 12)
        row = {
            "amount": float(rng.gamma(1.5, scale)),
            "oldbalanceOrg": float(rng.choice([0.0, rng.uniform(0, scale), 0.1, 1e17])),
            "newbalanceOrig": float(rng.uniform(0, scale)),
            "oldbalanceDest": int(rng.integers(0, 10**6)),  # an int stays exact either way
            "newbalanceDest": float(rng.uniform(0, scale)),
            "event_time": float(rng.choice([rng.uniform(-1e9, 1e10), rng.integers(-5, 5) * 86_400.0, 3_599.999999])),
            "type": str(rng.choice(["PAYMENT", "TRANSFER", "CASH_OUT", "DEBIT", "payment"])),
        }
        vectorised = {name: float(v[0]) for name, v in request_features(from_mapping(row), FEATURES).items()}
        plain = request_values(row, FEATURES)
        assert list(plain) == list(vectorised)
        for name, value in plain.items():
            assert type(value) is float and value.hex() == vectorised[name].hex(), (name, row)  # -0.0 too
            checked += 1
    assert checked == 3_000 * 8
    assert math.isclose(request_values({"event_time": 7_200.5}, (HourOfDay(),))["hour_of_day"], 2.0)


def test_a_missing_column_is_named() -> None:
    with pytest.raises(MissingColumnError, match="'newbalanceOrig'"):
        request_values({"amount": 1.0, "oldbalanceOrg": 2.0, "event_time": 0.0}, FEATURES)
