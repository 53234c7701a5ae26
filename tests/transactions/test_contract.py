"""The raw-transaction contract: the canonical frame, and errors that name the column, row and value."""

from __future__ import annotations

from pathlib import Path

import numpy as np
import pandas as pd
import pytest

from fraud_detection.schema import DataValidationError
from fraud_detection.transactions.contract import canonical
from fraud_detection.transactions.frame import AMOUNT, EVENT_TIME, LABEL, LABEL_TIME, SEQ, TX_ID, key_column
from fraud_detection.transactions.mapping import load_mapping, parse_mapping
from fraud_detection.transactions.read import read_transactions


def customer_terminal_rows() -> pd.DataFrame:
    """Five rows; rows 2 and 4 share a time and must keep their file order."""
    return pd.DataFrame(
        {
            "tx_id": ["a", "b", "c", "d", "e"],
            "tx_time": [30.0, 10.0, 20.0, 10.0, 0.0],
            "customer_id": ["C1", "C2", "C1", "C3", "C2"],
            "terminal_id": [7, 8, 7, 9, 8],
            "amount": [5.0, 12.5, 0.0, 3.0, 40.0],
            "channel": ["pos", "online", "pos", "pos", "online"],
            "is_fraud": [0, 1, 0, 0, 0],
            "label_time": [100.0, 10.0, 50.0, 700.0, 1.0],
        }
    )


def paysim_rows() -> pd.DataFrame:
    return pd.DataFrame(
        {
            "step": [1, 1, 2],
            "type": ["TRANSFER", "CASH_OUT", "PAYMENT"],
            "amount": [181.0, 181.0, 9839.64],
            "nameOrig": ["C1305486145", "C840083671", "C1231006815"],
            "oldbalanceOrg": [181.0, 181.0, 170136.0],
            "newbalanceOrig": [0.0, 0.0, 160296.36],
            "nameDest": ["C553264065", "C38997010", "M1979787155"],
            "oldbalanceDest": [0.0, 21182.0, 0.0],
            "newbalanceDest": [0.0, 0.0, 0.0],
            "isFraud": [1, 1, 0],
            "isFlaggedFraud": [0, 0, 0],
        }
    )


def test_the_canonical_frame_is_sorted_stably_and_numbered_by_seq() -> None:
    frame = canonical(customer_terminal_rows(), load_mapping("customer_terminal"))
    assert list(frame.columns) == load_mapping("customer_terminal").canonical_columns()
    assert frame[TX_ID].tolist() == ["e", "b", "d", "c", "a"]  # b before d: same time, file order
    assert frame[SEQ].tolist() == [0, 1, 2, 3, 4]
    assert frame[SEQ].dtype == np.int64 and frame[LABEL].dtype == np.int64
    for column in (EVENT_TIME, AMOUNT, LABEL_TIME):
        assert frame[column].dtype == np.float64
    assert frame[key_column("terminal")].tolist() == ["8", "8", "9", "7", "7"]  # keys are strings
    assert frame["channel"].tolist() == ["online", "online", "pos", "pos", "pos"]


def test_paysim_steps_are_hours_ids_are_row_numbers_and_the_flag_is_dropped() -> None:
    frame = canonical(paysim_rows(), load_mapping("paysim"))
    assert frame[TX_ID].tolist() == ["1", "2", "3"]
    assert frame[EVENT_TIME].tolist() == [3600.0, 3600.0, 7200.0]
    assert frame[LABEL_TIME].tolist() == frame[EVENT_TIME].tolist()  # no delay given: known at once
    assert "isFlaggedFraud" not in frame.columns
    assert frame[key_column("destination")].tolist() == ["C553264065", "C38997010", "M1979787155"]


def test_a_fixed_delay_and_iso_datetimes_give_label_times() -> None:
    mapping = parse_mapping(
        {
            "event_time": "when",
            "time_unit": "datetime",
            "entities": {"card": "pan"},
            "amount": "amt",
            "label": "y",
            "label_delay_seconds": 86_400,
        }
    )
    raw = pd.DataFrame(
        {"when": ["1970-01-02T00:00:00Z", "1970-01-01 00:01:00"], "pan": ["p", "q"], "amt": [1, 2], "y": [0, 1]}
    )
    frame = canonical(raw, mapping)
    assert frame[EVENT_TIME].tolist() == [60.0, 86_400.0]
    assert frame[LABEL_TIME].tolist() == [86_460.0, 172_800.0]


def broken(column: str, row: int, value: object) -> pd.DataFrame:
    raw = customer_terminal_rows()
    values = raw[column].tolist()
    values[row - 1] = value
    raw[column] = pd.Series(values, dtype=object)
    return raw


@pytest.mark.parametrize(
    "raw, message",
    [
        (customer_terminal_rows().drop(columns=["amount", "channel"]), "missing columns: amount (amount), channel"),
        (customer_terminal_rows().assign(score=1.0), "unexpected columns: score (not named in the mapping"),
        (customer_terminal_rows().iloc[:0], "the data set has no rows"),
        (pd.DataFrame(), "the data set has no columns"),
        (broken("tx_id", 4, "b"), "column 'tx_id' must hold unique ids: 'b' is at rows 2 and 4 (1 repeated id)"),
        (broken("tx_id", 3, None), "column 'tx_id' has 1 empty id (first at row 3)"),
        (broken("tx_time", 2, "soon"), "column 'tx_time' must be numeric: row 2 has 'soon'"),
        (broken("tx_time", 5, np.inf), "column 'tx_time' has 1 missing or infinite value (first at row 5)"),
        (broken("customer_id", 3, "  "), "column 'customer_id' has 1 empty key (first at row 3)"),
        (broken("terminal_id", 1, np.nan), "column 'terminal_id' has 1 empty key (first at row 1)"),
        (broken("amount", 4, -2.5), "column 'amount' has 1 negative value (first at row 4: -2.5)"),
        (broken("amount", 2, np.nan), "column 'amount' has 1 missing or infinite value (first at row 2)"),
        (broken("is_fraud", 3, 2), "column 'is_fraud' must be 0 or 1: found 2 (first at row 3)"),
        (broken("is_fraud", 2, 0), "column 'is_fraud' has a single class, 0 (legitimate)"),
        (
            broken("label_time", 4, 9.0),
            "column 'label_time' must not be before the event time ('tx_time'): row 4 has 9.0 before 10.0",
        ),
        (broken("channel", 5, None), "column 'channel' has 1 empty value (first at row 5)"),
    ],
)
def test_a_bad_row_or_column_is_named(raw: pd.DataFrame, message: str) -> None:
    with pytest.raises(DataValidationError) as raised:
        canonical(raw, load_mapping("customer_terminal"))
    assert message in str(raised.value)


def test_a_numeric_request_column_must_be_numbers() -> None:
    raw = paysim_rows()
    raw["oldbalanceDest"] = pd.Series([0.0, "n/a", 0.0], dtype=object)
    with pytest.raises(DataValidationError, match="column 'oldbalanceDest' must be numeric: row 2 has 'n/a'"):
        canonical(raw, load_mapping("paysim"))


def test_a_datetime_column_must_hold_datetimes() -> None:
    mapping = parse_mapping(
        {"event_time": "when", "time_unit": "datetime", "entities": {"card": "p"}, "amount": "a", "label": "y"}
    )
    raw = pd.DataFrame({"when": ["2024-01-01", "yesterday"], "p": ["x", "y"], "a": [1, 2], "y": [0, 1]})
    with pytest.raises(DataValidationError, match="column 'when' must be an ISO 8601 datetime: row 2 has 'yesterday'"):
        canonical(raw, mapping)


def test_a_csv_or_parquet_file_reads_into_the_same_frame(tmp_path: Path) -> None:
    raw = paysim_rows()
    raw.to_csv(tmp_path / "paysim.csv", index=False)
    raw.to_parquet(tmp_path / "paysim.parquet", index=False)
    from_csv = read_transactions(str(tmp_path / "paysim.csv"), load_mapping("paysim"))
    pd.testing.assert_frame_equal(from_csv, read_transactions(str(tmp_path / "paysim.parquet"), load_mapping("paysim")))
    pd.testing.assert_frame_equal(from_csv, canonical(raw, load_mapping("paysim")))
    with pytest.raises(FileNotFoundError):
        read_transactions(str(tmp_path / "none.csv"), load_mapping("paysim"))
