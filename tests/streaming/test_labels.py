"""Label messages of the labels topic (raw-transaction models): what :func:`serving.raw_payload.parse_label` takes."""

from __future__ import annotations

import pytest

from serving.payload import PayloadError
from serving.raw_payload import parse_label


def test_a_label_gives_its_id_its_value_and_its_time_in_seconds() -> None:
    assert parse_label({"tx_id": 17, "label": 1, "label_time": 2.5}, "hours", "label") == ("17", 1, 9000.0)
    assert parse_label({"tx_id": "t", "label": 0, "label_time": "1970-01-02T00:00:00"}, "datetime", "label") == (
        "t",
        0,
        86400.0,
    )


@pytest.mark.parametrize(
    ("row", "words"),
    [
        ({"tx_id": "t", "label": 2, "label_time": 1.0}, "label.label: expected 0 or 1, got 2"),
        ({"tx_id": "t", "label": True, "label_time": 1.0}, "label.label: expected 0 or 1, got boolean true"),
        ({"tx_id": "t", "label": 1}, "missing ['label_time']"),
        ({"tx_id": "t", "label": 1, "label_time": 1.0, "amount": 3}, "unknown ['amount']"),
        ({"tx_id": "", "label": 1, "label_time": 1.0}, "label.tx_id: empty text"),
        ({"tx_id": "t", "label": 1, "label_time": "soon"}, "label.label_time: expected a number"),
        ([1, 2], "expected an object {tx_id, label, label_time}, got a list"),
    ],
)
def test_a_bad_label_is_refused_naming_the_field(row: object, words: str) -> None:
    with pytest.raises(PayloadError) as caught:
        parse_label(row, "seconds", "label")
    assert words in str(caught.value)
