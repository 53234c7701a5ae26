"""The prediction log's round: the batches queued since the last one encoded together, byte for byte as each alone,
and a batch that cannot be encoded dropped alone (counted) while the others go on to the producer."""

from __future__ import annotations

import numpy as np
import pytest
from prometheus_client import REGISTRY

from fraud_detection.monitoring import records
from fraud_detection.schema import FEATURES
from serving.log_records import Scored, Source, encoded, messages
from serving.prediction_log import PredictionLog
from tests.conftest import free_port

WHERE = Source("fraud-champion", "fraud")


def _scored(n: int, seed: int, endpoint: str = "default", version: str = "7", ids: object = None) -> Scored:
    rng = np.random.default_rng(seed)
    x = rng.normal(size=(n, len(FEATURES))).astype(np.float32)
    proba = rng.uniform(size=n).astype(np.float32)
    return Scored(
        endpoint,  # type: ignore[arg-type]
        version,
        list(FEATURES),
        x,
        proba,
        proba >= 0.5,
        ids if ids is not None else f"req-{seed}",  # type: ignore[arg-type]
        seed * 0x1000 if seed % 2 else 0,
        1_780_000_000_000_000 + seed * 777,
    )


def test_a_round_is_encoded_as_each_batch_alone_in_order_by_run() -> None:
    work = [
        _scored(1, 1),
        _scored(1, 2),
        _scored(3, 3, ids=("a", "b", "c")),
        _scored(1, 4, endpoint="shadow", version="8"),
        _scored(2, 5, endpoint="shadow", version="8"),
        _scored(1, 6),
    ]
    runs = encoded(work, WHERE)
    assert [(endpoint, len(found)) for endpoint, found in runs] == [("default", 5), ("shadow", 3), ("default", 1)]
    assert [m for _, found in runs for m in found] == [m for scored in work for m in messages(scored, WHERE)]
    decoded = [records.decode(*m) for _, found in runs for m in found]
    assert [item.id for item in decoded] == [
        "req-1/0",
        "req-2/0",
        "a",
        "b",
        "c",
        "req-4/0",
        "req-5/0",
        "req-5/1",
        "req-6/0",
    ]
    assert decoded[0].data.trace_id == f"{0x1000:032x}" and decoded[1].data.trace_id == ""
    assert decoded[0].time != decoded[1].time  # each request keeps its own time


def _counter(name: str, **labels: str) -> float:
    return sum(
        s.value
        for m in REGISTRY.collect()
        for s in m.samples
        if s.name == name and all(s.labels.get(k) == v for k, v in labels.items())
    )


def test_a_batch_that_cannot_be_encoded_is_dropped_alone_and_the_others_are_sent_on() -> None:
    bad = _scored(2, 9)._replace(feature_names=list(FEATURES)[:-1])  # 29 values, 28 names: not encodable
    before = {
        reason: _counter("fraud_prediction_log_dropped_total", reason=reason)
        for reason in ("unencodable", "undelivered")
    }
    log = PredictionLog({"bootstrap.servers": f"127.0.0.1:{free_port()}", "log_level": 0}, "t", WHERE, 100, 0.5)
    log.start()
    for scored in (_scored(1, 1), bad, _scored(3, 3)):
        log.submit(scored)
    log.close(timeout=2)  # no broker: what reached the producer is purged, counted undelivered
    after = {
        reason: _counter("fraud_prediction_log_dropped_total", reason=reason) - before[reason] for reason in before
    }
    assert after == {"unencodable": 2, "undelivered": 4}


@pytest.mark.parametrize("dtype", [np.float32, np.float64, np.int64])
def test_every_dtype_is_encoded_as_records_encode_does(dtype: type) -> None:
    x = np.arange(3 * len(FEATURES), dtype=np.float64).reshape(3, len(FEATURES)) * 1.7 - 40
    if np.dtype(dtype).kind == "f":
        x[0, :4] = [1e-7, 3e20, -0.0, 5e-324]
    proba = np.asarray([0.0, 0.123456789, 1.0], dtype=np.float32)
    work = [
        Scored(
            "canary",
            "9",
            list(FEATURES),
            x[i : i + 1].astype(dtype),
            proba[i : i + 1],
            proba[i : i + 1] >= 0.5,
            (f'id"{i}',),
            0,
            1_780_000_000_000_001 + i,
        )
        for i in range(3)
    ]
    [(endpoint, found)] = encoded(work, WHERE)
    assert endpoint == "canary" and len(found) == 3
    for i, (key, value, headers) in enumerate(found):
        item = records.decode(key, value, headers)
        expected = records.Prediction(
            transaction_id=f'id"{i}',
            model_version="9",
            features=dict(zip(FEATURES, x[i].astype(dtype).tolist(), strict=True)),
            probability=float(proba[i]),
            decision=bool(proba[i] >= 0.5),
        )
        assert item.data == expected
        assert tuple(records.encode(item)) == (key, value, headers)
