"""The stream scorer's message handling and bulk metrics, without a broker: decoding, rejects, results."""

from __future__ import annotations

import numpy as np
import orjson
import pytest

from fraud_detection.schema import FEATURES
from serving.payload import PayloadError, parse_v1
from streaming import messages


def _row(i: int) -> dict[str, float]:
    return {name: float(i + j) / 10 for j, name in enumerate(FEATURES)}


def test_a_batch_decodes_to_the_same_matrix_the_server_parses() -> None:
    rows = [_row(i) for i in range(5)]
    batch = messages.decode_batch([orjson.dumps(r) for r in rows], [f"id-{i}".encode() for i in range(5)])
    assert batch.ids == [f"id-{i}" for i in range(5)]
    assert batch.rejects == []
    np.testing.assert_array_equal(batch.x, parse_v1({"instances": rows}, 10))


def test_the_id_field_wins_over_the_key_and_is_not_a_feature() -> None:
    batch = messages.decode_batch([orjson.dumps({**_row(1), "transaction_id": "abc"})], [b"key"])
    assert batch.ids == ["abc"]
    assert batch.x.shape == (1, len(FEATURES))


def test_bad_rows_are_rejected_one_by_one_and_good_ones_kept_in_order() -> None:
    good, bad = _row(1), {**_row(2), "V5": "x"}
    values = [orjson.dumps(good), b"nope", orjson.dumps(bad), orjson.dumps(good), orjson.dumps(_row(3))]
    keys = [b"a", b"b", b"c", None, b"e"]
    batch = messages.decode_batch(values, keys)
    assert batch.ids == ["a", "e"]
    assert batch.positions == [0, 4]
    kinds = {position: kind for position, kind, _ in batch.rejects}
    assert kinds == {1: messages.NOT_JSON, 2: messages.NOT_A_TRANSACTION, 3: messages.NO_TRANSACTION_ID}
    reasons = {position: reason for position, _, reason in batch.rejects}
    assert reasons[2] == "message.V5: expected a number, got string 'x'"


@pytest.mark.parametrize(
    ("row", "error"),
    [
        ({**_row(1), "V3": True}, "instances[1].V3: expected a number, got boolean true"),
        ({**_row(1), "V3": 1e39}, "instances[1].V3: 1e+39 is outside the float32 range"),
        ({**_row(1), "V3": 10**400}, "instances[1].V3"),
        ({**_row(1), "Amount": -1.0}, "row 1: Amount must be >= 0"),
        ({k: v for k, v in _row(1).items() if k != "V9"}, "missing features ['V9']"),
        ({**_row(1), "v9": 1.0}, "unknown features 'v9'"),
    ],
)
def test_the_fast_batch_path_refuses_what_the_per_field_checks_refuse(row: dict, error: str) -> None:
    with pytest.raises(PayloadError, match=error.replace("[", r"\[").replace("]", r"\]").replace("+", r"\+")):
        parse_v1({"instances": [_row(0), row]}, 10)


def test_results_are_identical_for_the_same_score() -> None:
    one = messages.result_value("t", 0.25, False, "7", 0.5, None)
    assert one == messages.result_value("t", 0.25, False, "7", 0.5, None)
    assert orjson.loads(one) == {
        "transaction_id": "t",
        "fraud_probability": 0.25,
        "is_fraud": False,
        "model_version": "7",
        "threshold": 0.5,
    }
