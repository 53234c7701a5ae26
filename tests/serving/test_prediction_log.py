"""The prediction log's parts without a server: the encoder against ``records.encode``, the bounded queue and its
counters with no broker, the settings and options. The server and a real broker: test_prediction_log_server.py."""

from __future__ import annotations

import time
from datetime import UTC, datetime

import numpy as np
import pytest
from prometheus_client import REGISTRY

from fraud_detection.monitoring import records
from fraud_detection.schema import FEATURES
from serving.log_records import Scored, Source, event_time, messages
from serving.prediction_log import PredictionLog
from serving.settings import ServingSettings
from tests.conftest import free_port
from tests.serving.test_settings_cli import server_args

WHERE = Source("fraud-detector", "fraud")


def scored(n: int, ids: tuple[str, ...] | str = "req-1", when: int = 1_780_000_000_250_000, trace: int = 0) -> Scored:
    rng = np.random.default_rng(n)
    x = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    proba = rng.uniform(size=n).astype(np.float32)
    return Scored("default", "7", FEATURES, x, proba, proba >= 0.5, ids, trace, when)


@pytest.mark.parametrize(
    ("ids", "when", "trace"),
    [
        ("req-1", 1_780_000_000_250_001, 0),
        (("tx-a", "tx-b", "tx-c"), 1_780_000_000_000_000, 0x4BF92F3577B34DA6A3CE929D0E0E4736),
    ],
)
def test_messages_are_what_records_encode_gives(ids: tuple[str, ...] | str, when: int, trace: int) -> None:
    batch = scored(3, ids, when, trace)
    got = list(messages(batch, WHERE))
    assert len(got) == 3
    expected_ids = [f"req-1/{i}" for i in range(3)] if isinstance(ids, str) else list(ids)
    for i, (key, value, headers) in enumerate(got):
        prediction = records.Prediction(
            transaction_id=expected_ids[i],
            model_version="7",
            features=dict(zip(FEATURES, batch.x[i].tolist(), strict=True)),
            probability=float(batch.proba[i]),
            decision=bool(batch.decisions[i]),
            trace_id=f"{trace:032x}" if trace else "",
        )
        item = records.record(
            prediction,
            inference_service="fraud-detector",
            namespace="fraud",
            time=datetime.fromtimestamp(when // 1_000_000, UTC).replace(microsecond=when % 1_000_000),
        )
        assert (key, value, headers) == tuple(records.encode(item))
        assert records.decode(key, value, headers) == item


def test_event_time_is_rfc3339_in_utc() -> None:
    assert event_time(500_000) == "1970-01-01T00:00:00.500000Z"
    assert event_time(60_000_000) == "1970-01-01T00:01:00Z"
    assert event_time(1_780_000_000_000_007) == "2026-05-28T20:26:40.000007Z"


def counter(name: str, **labels: str) -> float:
    total = 0.0
    for metric in REGISTRY.collect():
        for sample in metric.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def test_with_no_broker_every_row_is_dropped_and_counted_and_submit_stays_fast() -> None:
    before = counter("fraud_prediction_log_dropped_total")
    before_full = counter("fraud_prediction_log_dropped_total", reason="queue_full")
    log = PredictionLog(
        {"bootstrap.servers": f"127.0.0.1:{free_port()}", "log_level": 0}, "t", WHERE, 50, timeout_seconds=1.0
    )
    log.start()
    try:
        batch = scored(1)
        started = time.perf_counter()
        for _ in range(2_000):
            log.submit(batch)
        per_call = (time.perf_counter() - started) / 2_000
        assert per_call < 200e-6, f"submit took {per_call * 1e6:.0f} us"
        deadline = time.monotonic() + 20
        while counter("fraud_prediction_log_dropped_total") - before < 2_000 and time.monotonic() < deadline:
            time.sleep(0.1)
    finally:
        log.close(timeout=2)
    assert counter("fraud_prediction_log_dropped_total") - before == 2_000
    assert counter("fraud_prediction_log_dropped_total", reason="queue_full") - before_full > 0


def test_queue_bound_is_in_rows() -> None:
    log = PredictionLog({"bootstrap.servers": "127.0.0.1:1"}, "t", WHERE, 10, timeout_seconds=1.0)
    before = counter("fraud_prediction_log_dropped_total", reason="queue_full")
    log.submit(scored(8))
    log.submit(scored(3))  # 11 > 10: dropped whole
    log.submit(scored(2))
    assert log.queued() == 10
    assert counter("fraud_prediction_log_dropped_total", reason="queue_full") - before == 3


def test_settings_and_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from serving.main import settings_from_args

    monkeypatch.setenv("FRAUD_PREDICTION_LOG_BOOTSTRAP_SERVERS", "k:9092")
    monkeypatch.setenv("FRAUD_SHADOW_MODEL_URI", "/models/challenger")
    settings = ServingSettings()
    assert (settings.prediction_log_bootstrap_servers, settings.prediction_log_topic) == ("k:9092", "fraud-predictions")
    assert (settings.prediction_log_endpoint, settings.shadow_model_uri) == ("default", "/models/challenger")
    given = settings_from_args(server_args(["--prediction-log-topic", "other", "--shadow-model-uri", "/m/c"]))
    assert (given.prediction_log_topic, given.shadow_model_uri) == ("other", "/m/c")
    monkeypatch.setenv("FRAUD_PREDICTION_LOG_ENDPOINT", "shadow")
    with pytest.raises(ValueError, match="prediction_log_endpoint"):
        ServingSettings()
