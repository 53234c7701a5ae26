"""A scorer that only reads and waits for the stream's writer (``wait_for_writer``): its settings, its bounded wait
on the real embedded store, and the applier's refusal of a public-schema model. The replay through the broker, with
the writer killed -9, is in ``test_transactions_stream.py``."""

from __future__ import annotations

import logging
from pathlib import Path

import pytest
from prometheus_client import REGISTRY
from pydantic import ValidationError

from fraud_detection.features.store import SQLiteStateStore, StoreUnavailable
from fraud_detection.modeldir import TransactionInputs
from fraud_detection.transactions.mapping import load_mapping
from streaming.consumer import StreamScorer
from streaming.settings import StreamSettings
from streaming.transactions import RawTransactions, WriterBehind
from tests.serving.conftest import make_model_dir
from tests.serving.transaction_model import MAPPING, feature_set


@pytest.mark.parametrize(
    ("given", "named"),
    [
        ({"wait_for_writer": True}, "wait_for_writer is for a scorer that only reads"),
        ({"wait_for_writer": True, "apply_transactions": False, "role": "applier"}, "wait_for_writer is for"),
        ({"role": "applier", "apply_transactions": False}, "role=applier applies transactions"),
        ({"role": "writer"}, "role"),
    ],
)
def test_contradictory_writer_settings_are_refused_with_the_reason(given: dict[str, object], named: str) -> None:
    with pytest.raises(ValidationError, match=named):
        StreamSettings(**given)  # type: ignore[arg-type]


def timeouts() -> float:
    return REGISTRY.get_sample_value("fraud_stream_writer_timeouts_total") or 0.0


def test_the_wait_ends_once_the_writer_passed_the_batch_and_fails_naming_the_partition_it_did_not_reach(
    tmp_path: Path,
) -> None:
    path = tmp_path / "state.db"
    features = feature_set()
    writer = SQLiteStateStore(path, horizon=features.horizon)
    writer.apply_many([], {("tx-in", 0): 5})  # partition 0 applied up to offset 4; nothing of partition 1
    settings = StreamSettings(
        input_topic="tx-in",
        apply_transactions=False,
        wait_for_writer=True,
        writer_wait_seconds=0.2,
        feature_store_path=str(path),
    )
    inputs = TransactionInputs(mapping=load_mapping(MAPPING), features=features)
    raw = RawTransactions(settings, inputs, {"bootstrap.servers": "127.0.0.1:9"})
    before = timeouts()
    try:
        raw.wait_written({0: 4})  # the batch's last offset 4 is applied: no wait
        with pytest.raises(WriterBehind, match=r"partition 1 up to offset 7 within 0\.2s \(it has applied none"):
            raw.wait_written({0: 4, 1: 7})
        with pytest.raises(WriterBehind, match=r"partition 0 up to offset 5 within 0\.2s \(its next offset is 5"):
            raw.wait_written({0: 5})
        assert timeouts() == before + 2
        writer.apply_many([], {("tx-in", 0): 6, ("tx-in", 1): 8})
        raw.wait_written({0: 5, 1: 7})
        assert timeouts() == before + 2
    finally:
        raw.close()
        writer.close()


def test_an_applier_refuses_a_public_schema_model_with_the_reason(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    model = make_model_dir(tmp_path / "public", n_rows=2_000)
    settings = StreamSettings(model_uri=str(model), role="applier", load_retry_seconds=0)
    with caplog.at_level(logging.ERROR, logger="streaming.consumer"):
        assert StreamScorer(settings).load() is False
    assert "role=applier needs a model trained on raw transactions" in caplog.text


def store_errors(operation: str) -> float:
    return REGISTRY.get_sample_value("fraud_feature_store_errors_total", {"operation": operation}) or 0.0


def test_a_store_that_cannot_be_opened_is_one_error_counted_as_open(tmp_path: Path) -> None:
    settings = StreamSettings(
        input_topic="tx-in",
        apply_transactions=False,
        wait_for_writer=True,
        feature_store_path=str(tmp_path / "missing.db"),  # a scorer that only reads never creates the file
    )
    inputs = TransactionInputs(mapping=load_mapping(MAPPING), features=feature_set())
    raw = RawTransactions(settings, inputs, {"bootstrap.servers": "127.0.0.1:9"})
    before = {operation: store_errors(operation) for operation in ("open", "progress")}
    try:
        with pytest.raises(StoreUnavailable, match=r"missing\.db"):
            raw.wait_written({0: 4})
    finally:
        raw.close()
    assert store_errors("open") == before["open"] + 1
    assert store_errors("progress") == before["progress"]
