"""The prediction log and the shadow challenger on real parts: ``python -m serving`` on 127.0.0.1 and a Tansu broker.

* N scored rows (V1, V2, flat and CloudEvents bodies; public-schema and raw-transaction models) give N records,
  matched by id and decoded with ``records.decode``;
* a shadow challenger's records carry endpoint ``shadow`` and its version, and the answers are byte-identical
  with and without it;
* with the broker stopped midway, every request still succeeds, p99 and RSS stay flat, and
  ``sent + dropped`` equals the rows scored, read from ``/metrics``.
"""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import requests
from prometheus_client.parser import text_string_to_metric_families

from fraud_detection.modeldir import load_model_dir
from fraud_detection.monitoring import records
from fraud_detection.schema import FEATURES
from tests.serving.cases import V1, V2, named, rows
from tests.serving.conftest import MODEL_VERSION, ServerProcess, make_model_dir
from tests.serving.otlp import OtlpReceiver
from tests.serving.transaction_model import TransactionModel, make_transaction_model
from tests.streaming.broker import Broker, read_topic

pytestmark = pytest.mark.slow

CHALLENGER_VERSION = "8"
TRACE_ID = "4bf92f3577b34da6a3ce929d0e0e4736"


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with Broker(tmp_path_factory.mktemp("broker") / "tansu.log") as running:
        yield running


@pytest.fixture(scope="module")
def challenger_dir(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """Another real booster (other seed), exported as version 8."""
    directory = make_model_dir(tmp_path_factory.mktemp("challenger"), seed=11)
    path = directory / "metadata.json"
    metadata = json.loads(path.read_text())
    path.write_text(json.dumps({**metadata, "model_version": CHALLENGER_VERSION}))
    return directory


def log_env(broker: Broker, topic: str, **extra: str) -> dict[str, str]:
    broker.create_topics(topic)
    return {"FRAUD_PREDICTION_LOG_BOOTSTRAP_SERVERS": broker.bootstrap, "FRAUD_PREDICTION_LOG_TOPIC": topic, **extra}


def start(model_uri: str, log_path: Path, env: dict[str, str]) -> ServerProcess:
    server = ServerProcess(model_uri, log_path, env)
    try:
        server.wait_ready()
    except BaseException:
        server.stop()
        raise
    return server


def metric(server: ServerProcess, name: str, **labels: str) -> float:
    total = 0.0
    for family in text_string_to_metric_families(requests.get(server.url + "/metrics", timeout=5).text):
        for sample in family.samples:
            if sample.name == name and all(sample.labels.get(k) == v for k, v in labels.items()):
                total += sample.value
    return total


def decoded(server: ServerProcess, broker: Broker, topic: str, expected: int) -> list[records.PredictionRecord]:
    """The records on ``topic`` once the server says it sent ``expected``; the topic must hold exactly those."""
    server.wait_until(lambda: metric(server, "fraud_prediction_log_sent_total") >= expected, what="records sent")
    assert metric(server, "fraud_prediction_log_sent_total") == expected
    found = read_topic(broker.config(), topic, expected + 1, timeout=5)  # all are there: a few seconds for any more
    assert len(found) == expected
    return [records.decode(key, value, headers) for key, value, headers in found]


def requests_of_every_kind(x: np.ndarray) -> list[tuple[str, dict[str, Any], dict[str, str], list[str]]]:
    """(path, body, headers, the transaction ids its rows get in the log) for V1, V2, flat and CloudEvents bodies."""
    cloudevent = {
        "ce-specversion": "1.0",
        "ce-id": "ce-42",
        "ce-source": "/tests",
        "ce-type": "org.example.transaction",
        "content-type": "application/json",
    }
    body_v2 = {
        "id": "v2-a",
        "inputs": [{"name": "input-0", "shape": [2, len(FEATURES)], "datatype": "FP32", "data": x[3:5].tolist()}],
    }
    return [
        (V1, {"instances": x[0:1].tolist()}, {"x-request-id": "req-1"}, ["req-1/0"]),
        (V1, {"id": "body-7", "instances": named(x[1:3])}, {}, ["body-7/0", "body-7/1"]),
        (V2, body_v2, {}, ["v2-a/0", "v2-a/1"]),
        (V1, named(x[5:6])[0], {"x-request-id": "flat-1"}, ["flat-1/0"]),
        ("/predict", named(x[6:7])[0], {"x-request-id": "legacy-1"}, ["legacy-1/0"]),
        (V1, {"instances": x[7:9].tolist()}, cloudevent, ["ce-42/0", "ce-42/1"]),
    ]


def send_all(server: ServerProcess, x: np.ndarray, traced: bool = False) -> list[bytes]:
    answers = []
    for path, body, headers, _ in requests_of_every_kind(x):
        if traced:
            headers = {**headers, "traceparent": f"00-{TRACE_ID}-00f067aa0ba902b7-01"}
        response = requests.post(server.url + path, json=body, headers=headers, timeout=10)
        assert response.status_code == 200, response.text
        answers.append(response.content)
    return answers


def test_every_scored_row_gives_one_record_matched_by_id(
    broker: Broker, model_dir: Path, otlp_receiver: OtlpReceiver, tmp_path: Path
) -> None:
    env = log_env(
        broker,
        "predictions-public",
        FRAUD_TRACING_EXPORTER="otlp",
        FRAUD_OTLP_ENDPOINT=otlp_receiver.endpoint,
        FRAUD_NAMESPACE="fraud",
    )
    server = start(str(model_dir), tmp_path / "server.log", env)
    try:
        x = rows(9, seed=4)
        answers = send_all(server, x, traced=True)
        expected = [tx_id for *_, ids in requests_of_every_kind(x) for tx_id in ids]
        got = decoded(server, broker, "predictions-public", len(expected))
    finally:
        server.stop()
    assert sorted(r.id for r in got) == sorted(expected)
    booster, metadata = load_model_dir(model_dir)
    by_id = {r.id: r for r in got}
    order = ["req-1/0", "body-7/0", "body-7/1", "v2-a/0", "v2-a/1", "flat-1/0", "legacy-1/0", "ce-42/0", "ce-42/1"]
    proba = np.asarray(booster.predict_proba(x), dtype=np.float32)
    for i, tx_id in enumerate(order):
        item = by_id[tx_id]
        assert (item.endpoint, item.namespace, item.inferenceservicename) == ("default", "fraud", "fraud-detector")
        assert item.data.model_version == MODEL_VERSION
        assert item.data.features == dict(zip(FEATURES, x[i].tolist(), strict=True))
        assert item.data.probability == float(proba[i])
        assert item.data.decision == bool(proba[i] >= metadata.threshold)
        assert item.data.trace_id == TRACE_ID
    first = json.loads(answers[0])["predictions"][0]
    assert by_id["req-1/0"].data.probability == first["fraud_probability"]


@pytest.fixture(scope="module")
def transaction_model(tmp_path_factory: pytest.TempPathFactory) -> TransactionModel:
    return make_transaction_model(tmp_path_factory.mktemp("transactions") / "model", n_rows=1_000)


def test_raw_transactions_are_logged_by_their_tx_id_with_the_engineered_features(
    broker: Broker, transaction_model: TransactionModel, tmp_path: Path
) -> None:
    env = log_env(broker, "predictions-raw", FRAUD_FEATURE_STORE_PATH=str(tmp_path / "state.db"))
    server = start(str(transaction_model.directory), tmp_path / "server.log", env)
    try:
        sent = [transaction_model.source_row(i) for i in range(10)]
        answers = []
        for row in sent[:6]:
            answers.append(requests.post(server.url + V1, json={"instances": [row]}, timeout=10).json())
        answers.append(requests.post(server.url + V1, json={"instances": sent[6:]}, timeout=10).json())
        got = decoded(server, broker, "predictions-raw", len(sent))
    finally:
        server.stop()
    assert sorted(r.id for r in got) == sorted(str(row["tx_id"]) for row in sent)
    names = list(transaction_model.features.columns)
    probabilities = [p["fraud_probability"] for answer in answers for p in answer["predictions"]]
    by_id = {r.id: r for r in got}
    for row, probability in zip(sent, probabilities, strict=True):
        item = by_id[str(row["tx_id"])]
        assert list(item.data.features) == names
        assert item.data.probability == probability


def test_the_shadow_logs_its_own_records_and_changes_no_answer(
    broker: Broker, model_dir: Path, challenger_dir: Path, tmp_path: Path
) -> None:
    x = rows(9, seed=5)
    plain = start(str(model_dir), tmp_path / "plain.log", {})
    try:
        without = send_all(plain, x)
    finally:
        plain.stop()
    env = log_env(broker, "predictions-shadow", FRAUD_SHADOW_MODEL_URI=str(challenger_dir))
    server = start(str(model_dir), tmp_path / "shadowed.log", env)
    try:
        server.wait_until(lambda: "shadow challenger" in server.logs(), what="the shadow's load")
        assert "loaded from" in server.logs().split("shadow challenger", 1)[1].splitlines()[0], server.log_tail()
        with_shadow = send_all(server, x)
        expected = [tx_id for *_, ids in requests_of_every_kind(x) for tx_id in ids]
        got = decoded(server, broker, "predictions-shadow", 2 * len(expected))
        assert metric(server, "fraud_prediction_log_dropped_total") == 0
    finally:
        server.stop()
    assert with_shadow == without
    champion = [r for r in got if r.endpoint == "default"]
    shadow = [r for r in got if r.endpoint == "shadow"]
    assert sorted(r.id for r in champion) == sorted(expected) == sorted(r.id for r in shadow)
    assert {r.data.model_version for r in champion} == {MODEL_VERSION}
    assert {r.data.model_version for r in shadow} == {CHALLENGER_VERSION}
    challenger, metadata = load_model_dir(challenger_dir)
    by_id = {r.id: r for r in shadow}
    for item in champion:
        twin = by_id[item.id]
        assert twin.data.features == item.data.features
        features = np.asarray([list(item.data.features.values())], dtype=np.float32)
        probability = float(np.asarray(challenger.predict_proba(features), dtype=np.float32)[0])
        assert twin.data.probability == probability
        assert twin.data.decision == (probability >= metadata.threshold)
    assert any(r.data.probability != by_id[r.id].data.probability for r in champion)


def rss_kb(server: ServerProcess) -> int:
    """The server's resident memory with its children's (the prediction log's sender holds librdkafka's queue)."""
    import psutil

    process = psutil.Process(server.process.pid)
    children = process.children(recursive=True)
    assert children, "no prediction-log sender process"
    return sum(p.memory_info().rss for p in [process, *children]) // 1024


def timed(session: requests.Session, url: str, bodies: list[dict[str, Any]]) -> list[float]:
    latencies = []
    for body in bodies:
        started = time.perf_counter()
        response = session.post(url, json=body, timeout=10)
        latencies.append(time.perf_counter() - started)
        assert response.status_code == 200, response.text
    return latencies


def test_with_the_broker_stopped_serving_stays_flat_and_the_dropped_count_is_exact(
    model_dir: Path, tmp_path: Path
) -> None:
    n = 1_500
    x = rows(4 * n, seed=6)
    bodies = [{"instances": x[i : i + 1].tolist()} for i in range(len(x))]
    own = Broker(tmp_path / "tansu.log")
    try:
        env = log_env(own, "predictions-outage", FRAUD_PREDICTION_LOG_QUEUE_ROWS="500")
        env["FRAUD_PREDICTION_LOG_TIMEOUT_SECONDS"] = "2"
        server = start(str(model_dir), tmp_path / "server.log", env)
    except BaseException:
        own.stop()
        raise
    try:
        session = requests.Session()
        url = server.url + V1
        timed(session, url, bodies[:200])  # warm up
        before = timed(session, url, bodies[200:n])
        server.wait_until(lambda: metric(server, "fraud_prediction_log_sent_total") == n, what="all records sent")
        rss_before = rss_kb(server)
        own.stop()
        after = timed(session, url, bodies[n : 2 * n])
        rss_middle = rss_kb(server)
        after += timed(session, url, bodies[2 * n :])
        rss_end = rss_kb(server)
        total = len(bodies)

        def settled() -> bool:
            sent = metric(server, "fraud_prediction_log_sent_total")
            dropped = metric(server, "fraud_prediction_log_dropped_total")
            return sent + dropped == metric(server, "fraud_predictions_total") == total

        server.wait_until(settled, timeout=60, what="sent + dropped == scored")
        sent = metric(server, "fraud_prediction_log_sent_total")
        dropped = metric(server, "fraud_prediction_log_dropped_total")
        reasons = {
            r: metric(server, "fraud_prediction_log_dropped_total", reason=r) for r in ("producer_full", "undelivered")
        }
    finally:
        server.stop()
        own.stop()
    assert (sent, dropped) == (n, total - n), reasons
    assert reasons["producer_full"] > 0 and reasons["undelivered"] > 0, reasons
    p99_before, p99_after = (float(np.percentile(np.asarray(t) * 1000, 99)) for t in (before, after))
    print(f"p99 {p99_before:.2f} -> {p99_after:.2f} ms; RSS {rss_before} -> {rss_middle} -> {rss_end} kB; {reasons}")
    assert p99_after < 3 * p99_before + 10, f"p99 {p99_before:.1f} ms before the stop, {p99_after:.1f} ms after"
    assert rss_end - rss_before < 64 * 1024, f"RSS grew {(rss_end - rss_before) / 1024:.0f} MB after the stop"
    assert rss_end - rss_middle < 8 * 1024, f"RSS still growing: {(rss_end - rss_middle) / 1024:.0f} MB"
