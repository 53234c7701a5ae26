"""Raw-transaction request rows against PaySim's built-in mapping: what a row becomes, and what is refused."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fraud_detection.features.definitions import paysim_features
from fraud_detection.modeldir import TransactionInputs
from fraud_detection.transactions.mapping import load_mapping
from serving.feature_store import redis_url
from serving.payload import PayloadError, TensorInput
from serving.raw_payload import RawSchema, parse_v1_raw, parse_v2_raw

ROW: dict[str, Any] = {
    "step": 3,
    "type": "TRANSFER",
    "amount": 181.0,
    "nameOrig": "C1305486145",
    "oldbalanceOrg": 181.0,
    "newbalanceOrig": 0.0,
    "nameDest": "C553264065",
    "oldbalanceDest": 0.0,
    "newbalanceDest": 0.0,
}


@pytest.fixture(scope="module")
def schema() -> RawSchema:
    return RawSchema.of(TransactionInputs(mapping=load_mapping("paysim"), features=paysim_features()))


def test_a_paysim_row_becomes_the_transaction_the_contract_would_make(schema: RawSchema) -> None:
    (transaction,) = parse_v1_raw({"instances": [ROW]}, schema, "req-1", 10)
    assert transaction.event_time == 3 * 3600.0  # step is in hours
    assert dict(transaction.keys) == {"card": "C1305486145", "destination": "C553264065"}
    assert transaction.amount == 181.0
    assert transaction.request == {
        "oldbalanceOrg": 181.0,
        "newbalanceOrig": 0.0,
        "oldbalanceDest": 0.0,
        "newbalanceDest": 0.0,
        "type": "TRANSFER",
    }
    assert transaction.tx_id == "req-1/0"  # PaySim has no id column: the request id and the row


def test_a_row_may_carry_its_id_and_the_label_columns_which_are_ignored(schema: RawSchema) -> None:
    row = {**ROW, "tx_id": "p-17", "isFraud": 1, "isFlaggedFraud": 0}
    (transaction,) = parse_v1_raw(row, schema, "req-1", 10)
    assert transaction.tx_id == "p-17"
    assert "isFraud" not in transaction.request and "isFlaggedFraud" not in transaction.request


def test_whole_number_keys_are_read_as_the_contract_reads_them(schema: RawSchema) -> None:
    (transaction,) = parse_v1_raw({**ROW, "nameOrig": 1234.0, "nameDest": 77}, schema, "r", 10)
    assert dict(transaction.keys) == {"card": "1234", "destination": "77"}


@pytest.mark.parametrize(
    ("change", "message"),
    [
        ({"type": "WIRE"}, "body.type: unknown value 'WIRE', the model knows ['CASH_IN'"),
        ({"step": float("inf")}, "body.step: inf is not a finite number"),
        ({"amount": float("nan")}, "body.amount: nan is not a finite number"),
        ({"amount": True}, "body.amount: expected a number, got boolean true"),
        ({"nameDest": ""}, "body.nameDest: empty text"),
        ({"nameDest": " \t "}, "body.nameDest: empty text"),
        ({"amount": -0.5}, "body.amount: -0.5 is negative"),
        ({"amount": "12"}, "body.amount: expected a number, got"),
        ({"step": float("-inf")}, "body.step: -inf is not a finite number"),
        ({"nameOrig": float("nan")}, "body.nameOrig: nan is not a finite number"),
        ({"nameOrig": False}, "body.nameOrig: expected text, got boolean"),
        ({"tx_id": " "}, "body.tx_id: empty text"),
        ({"nameOrig": None}, "body.nameOrig: expected text, got null"),
        ({"isflaggedfraud": 0}, "unknown column(s) ['isflaggedfraud']"),
    ],
)
def test_a_bad_paysim_row_is_refused_naming_the_column(schema: RawSchema, change: dict[str, Any], message: str) -> None:
    with pytest.raises(PayloadError) as error:
        parse_v1_raw({**ROW, **change}, schema, "r", 10)
    assert message in str(error.value)


def test_a_missing_column_names_every_column_the_mapping_needs(schema: RawSchema) -> None:
    with pytest.raises(PayloadError) as error:
        parse_v1_raw({k: v for k, v in ROW.items() if k != "nameDest"}, schema, "r", 10)
    assert "missing column(s) ['nameDest']" in str(error.value)


def test_v2_columns_as_json_and_binary_tensors_give_the_same_transactions(schema: RawSchema) -> None:
    rows = [ROW, {**ROW, "step": 4, "nameOrig": "C9"}]
    as_json = [
        TensorInput(name, [2, 1], "BYTES" if isinstance(ROW[name], str) else "FP64", [[row[name]] for row in rows])
        for name in ROW
    ]
    binary = [
        TensorInput(
            name,
            [2],
            "BYTES" if isinstance(ROW[name], str) else "FP64",
            np.array([row[name].encode() if isinstance(row[name], str) else float(row[name]) for row in rows]),
        )
        for name in ROW
    ]
    first, second = parse_v2_raw(as_json, schema, "r", 10), parse_v2_raw(binary, schema, "r", 10)
    assert first == second
    assert [t.event_time for t in first] == [3 * 3600.0, 4 * 3600.0]
    assert parse_v1_raw({"instances": rows}, schema, "r", 10) == first


def test_v2_inputs_that_do_not_match_the_mapping_are_named(schema: RawSchema) -> None:
    inputs = [TensorInput(name, [1], "BYTES", ["x"]) for name in ROW if name != "step"]
    with pytest.raises(PayloadError, match=r"missing inputs \['step'\]"):
        parse_v2_raw([*inputs, TensorInput("colour", [1], "BYTES", ["red"])], schema, "r", 10)
    uneven = [TensorInput(name, [2 if name == "type" else 1], "BYTES", ["x"]) for name in ROW]
    with pytest.raises(PayloadError, match="needs 2 values"):
        parse_v2_raw(uneven, schema, "r", 10)


def test_too_many_rows_are_refused(schema: RawSchema) -> None:
    with pytest.raises(PayloadError, match="more than the limit of 2"):
        parse_v1_raw({"instances": [ROW] * 3}, schema, "r", 2)


def test_the_redis_password_goes_into_the_url_quoted_and_only_when_it_has_none() -> None:
    assert redis_url("rediss://10.0.0.3:6378/0", "p@ss:w/rd") == "rediss://:p%40ss%3Aw%2Frd@10.0.0.3:6378/0"
    assert redis_url("redis://:given@host:6379/0", "other") == "redis://:given@host:6379/0"
    assert redis_url("redis://host:6379/0", None) == "redis://host:6379/0"
