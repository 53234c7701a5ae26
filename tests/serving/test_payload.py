"""Payload parsing and validation as pure functions (no server)."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytest

from fraud_detection.schema import FEATURES
from serving.payload import PayloadError, TensorInput, parse_v1, parse_v2

ROW = {name: float(i) / 10 for i, name in enumerate(FEATURES)}
ORDERED = [ROW[name] for name in FEATURES]


def test_named_objects_come_out_in_feature_order_regardless_of_key_order() -> None:
    shuffled = dict(reversed(list(ROW.items())))
    x = parse_v1({"instances": [shuffled, ROW]}, max_rows=10)
    assert x.dtype == np.float32 and x.shape == (2, 29)
    np.testing.assert_array_equal(x[0], np.asarray(ORDERED, dtype=np.float32))
    np.testing.assert_array_equal(x[0], x[1])


def test_ordered_lists_flat_object_and_v2_agree() -> None:
    from_lists = parse_v1({"instances": [ORDERED]}, 10)
    from_flat = parse_v1(ROW, 10)
    from_tensor = parse_v2([TensorInput("t", [1, 29], "FP32", [ORDERED])], 10)
    from_columns = parse_v2([TensorInput(n, [1], "FP32", [ROW[n]]) for n in FEATURES], 10)
    for other in (from_flat, from_tensor, from_columns):
        np.testing.assert_array_equal(from_lists, other)


def test_integers_are_numbers() -> None:
    x = parse_v1({"instances": [[1] * 29]}, 10)
    assert x.tolist() == [[1.0] * 29]


def test_binary_v2_tensor_as_numpy() -> None:
    data = np.arange(58, dtype=np.float32).reshape(2, 29)
    np.testing.assert_array_equal(parse_v2([TensorInput("t", [2, 29], "FP32", data)], 10), data)


def test_binary_v2_tensor_with_nan_is_refused() -> None:
    data = np.zeros((1, 29), dtype=np.float32)
    data[0, 3] = np.nan
    with pytest.raises(PayloadError, match="element 3 is nan"):
        parse_v2([TensorInput("t", [1, 29], "FP32", data)], 10)


@pytest.mark.parametrize(
    ("body", "message"),
    [
        ({"instances": [{**ROW, "V1": float("nan")}]}, r"instances\[0\]\.V1: nan is not a finite number"),
        ({"instances": [{**ROW, "V2": float("inf")}]}, r"V2: inf is not a finite number"),
        ({"instances": [{**ROW, "V3": [1.0]}]}, r"V3: expected a number, got a list"),
        ({"instances": [{**ROW, "v3": 1.0}]}, r"did you mean 'V3'"),
        ({"instances": [ORDERED, ORDERED[:-1]]}, r"instances\[1\] has 28 values"),
        ({"instances": ["x"]}, r"instances\[0\]: expected an object of named features or a list of 29 numbers"),
        ({}, r"empty object"),
        ({"instances": [ROW] * 11}, r"11 rows, more than the limit of 10"),
        ({"inputs": []}, r"V2 body"),
        ("text", r"must be a JSON object, got string"),
    ],
)
def test_v1_errors_name_the_problem(body: Any, message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_v1(body, max_rows=10)


@pytest.mark.parametrize(
    ("inputs", "message"),
    [
        ([TensorInput("t", [1, 29], "BYTES", [ORDERED])], r"datatype must be FP32 \(or FP64\), got 'BYTES'"),
        ([TensorInput("t", [29], "FP32", ORDERED)], r"shape must be \[N, 29\]"),
        ([TensorInput("t", [1, 29], "FP32", ORDERED[:-1])], r"needs 29 values, data has 28"),
        ([TensorInput("t", [1, 29], "FP32", [None, *ORDERED[1:]])], r"element 0: expected a number, got null"),
        ([TensorInput("t", [1, 29], "FP32", [True, *ORDERED[1:]])], r"element 0: expected a number, got boolean"),
        ([TensorInput("t", [-1, 29], "FP32", ORDERED)], r"non-negative integers"),
        ([TensorInput(n, [1], "FP32", [1.0]) for n in (*FEATURES[:-1], "amount")], r"did you mean 'Amount'"),
        ([TensorInput(n, [1], "FP32", [1.0]) for n in (*FEATURES, "V1")], r"given more than once"),
        ([TensorInput(n, [1, 2], "FP32", [1.0, 2.0]) for n in FEATURES], r"shape must be \[N\] or \[N, 1\]"),
    ],
)
def test_v2_errors_name_the_problem(inputs: list[TensorInput], message: str) -> None:
    with pytest.raises(PayloadError, match=message):
        parse_v2(inputs, max_rows=10)
