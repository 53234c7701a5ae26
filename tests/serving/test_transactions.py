"""The predictor on raw transactions: a real server, a real store, the offline features as the truth.

A raw-transaction model directory (:mod:`tests.serving.transaction_model`) is served by ``python -m serving``. The
store is filled with the rows before the test window (as the stream would have left it); then the window is replayed
in time order, each transaction sent over V1, V2 and the flat body, labels applied to the store as their time passes.
Every answer must be the offline probability (offline features, the same booster) to within 1e-9.
"""

from __future__ import annotations

import json
import math
import re
import secrets
import struct
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import requests

from fraud_detection.features.redis_store import RedisStateStore
from fraud_detection.features.store import EntityStateStore, SQLiteStateStore
from serving.feature_store import redis_url
from tests.conftest import free_port, redis_server
from tests.serving.conftest import OtlpReceiver, ServerProcess
from tests.serving.transaction_model import TransactionModel, feature_set, make_transaction_model

NAME = "fraud-detector"
V1 = f"/v1/models/{NAME}:predict"
V2 = f"/v2/models/{NAME}/infer"
EXPLAIN = f"/v1/models/{NAME}:explain"
WINDOW = 120
"""Transactions replayed per store (each sent three times)."""


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> TransactionModel:
    return make_transaction_model(tmp_path_factory.mktemp("transactions") / "model")


@pytest.fixture(scope="module")
def sqlite_path(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return tmp_path_factory.mktemp("store") / "state.db"


@pytest.fixture(scope="module")
def sqlite_server(
    model: TransactionModel, sqlite_path: Path, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[ServerProcess]:
    """A server on the embedded store, applying each scored transaction itself (the default)."""
    env = {"FRAUD_FEATURE_STORE_PATH": str(sqlite_path), "FRAUD_MAX_BATCH_ROWS": "50"}
    process = ServerProcess(str(model.directory), tmp_path_factory.mktemp("server") / "server.log", env)
    try:
        process.wait_ready()
        yield process
    finally:
        process.stop()


def v2_body(row: dict[str, Any]) -> dict[str, Any]:
    """One transaction as V2 inputs, one per source column: BYTES for text, FP64 for numbers."""
    inputs = []
    for name, value in row.items():
        datatype = "BYTES" if isinstance(value, str) else "FP64"
        inputs.append({"name": name, "shape": [1], "datatype": datatype, "data": [value]})
    return {"inputs": inputs}


def scored(server: ServerProcess, row: dict[str, Any]) -> tuple[float, float, float]:
    """The probability of one transaction over V1, V2 and the flat body."""
    v1 = requests.post(server.url + V1, json={"instances": [row]}, timeout=10)
    v2 = requests.post(server.url + V2, json=v2_body(row), timeout=10)
    flat = requests.post(server.url + V1, json=row, timeout=10)
    for response in (v1, v2, flat):
        assert response.status_code == 200, response.text
    outputs = {output["name"]: output for output in v2.json()["outputs"]}
    return (
        v1.json()["predictions"][0]["fraud_probability"],
        outputs["fraud_probability"]["data"][0],
        flat.json()["predictions"][0]["fraud_probability"],
    )


def replay(server: ServerProcess, model: TransactionModel, store: EntityStateStore, stream_applies: bool) -> None:
    """Fill the store with the rows before the window, then score the window in time order (see the module)."""
    start = model.test_start
    next_label = model.fill(store, start)
    for i in range(start, start + WINDOW):
        event_time = float(model.raw["tx_time"].iloc[i])
        next_label = model.labels_before(store, next_label, event_time)
        row = model.source_row(i)
        for protocol, probability in zip(("V1", "V2", "flat"), scored(server, row), strict=True):
            assert abs(probability - float(model.proba[i])) <= 1e-9, (protocol, i, probability, model.proba[i])
        if i % 30 == 0:
            explained = requests.post(server.url + EXPLAIN, json={"instances": [row]}, timeout=10).json()
            values = explained["explanations"][0]["features"]
            expected = model.features.iloc[i]
            assert values == pytest.approx({name: float(expected[name]) for name in values}, rel=1e-6, abs=1e-9)
        if stream_applies:
            store.apply(model.transaction(i))


def test_v1_v2_and_flat_give_the_offline_probability_over_a_replay_of_the_test_window(
    sqlite_server: ServerProcess, model: TransactionModel, sqlite_path: Path
) -> None:
    store = SQLiteStateStore(sqlite_path, horizon=feature_set().horizon)
    try:
        replay(sqlite_server, model, store, stream_applies=False)
    finally:
        store.close()
    window = model.raw["tx_time"].iloc[model.test_start : model.test_start + WINDOW]
    assert window.is_monotonic_increasing and window.duplicated().sum() >= 10  # in time order, with ties
    assert model.features["terminal_fraud_risk_3d"].iloc[model.test_start :].max() > 0  # labels mattered


def test_explain_names_the_engineered_features(sqlite_server: ServerProcess, model: TransactionModel) -> None:
    row = model.source_row(len(model.raw) - 1)
    response = requests.post(sqlite_server.url + EXPLAIN, json={"instances": [row]}, timeout=10)
    assert response.status_code == 200, response.text
    explanation = response.json()["explanations"][0]
    names = list(feature_set().names)
    assert list(explanation["contributions"]) == names
    assert list(explanation["features"]) == names
    assert "card_count_1h" in names and "terminal_fraud_risk_3d" in names
    logit = explanation["base_value"] + sum(explanation["contributions"].values())
    assert 1 / (1 + math.exp(-logit)) == pytest.approx(explanation["fraud_probability"], abs=1e-5)
    assert explanation["tx_id"] == row["tx_id"]


def binary_v2(row: dict[str, Any]) -> tuple[bytes, dict[str, str]]:
    """One transaction as binary V2 tensors (where a non-finite number can arrive, unlike JSON)."""
    inputs, blobs = [], []
    for name, value in row.items():
        if isinstance(value, str):
            blob, datatype = struct.pack("<I", len(value.encode())) + value.encode(), "BYTES"
        else:
            blob, datatype = struct.pack("<d", value), "FP64"
        inputs.append({"name": name, "shape": [1], "datatype": datatype, "parameters": {"binary_data_size": len(blob)}})
        blobs.append(blob)
    header = json.dumps({"inputs": inputs}).encode()
    return header + b"".join(blobs), {"Inference-Header-Content-Length": str(len(header))}


def _without(row: dict[str, Any], column: str) -> dict[str, Any]:
    return {k: v for k, v in row.items() if k != column}


BAD = [
    ("missing key column", lambda r: {"instances": [_without(r, "customer_id")]}, "missing column(s) ['customer_id']"),
    ("negative amount", lambda r: {"instances": [{**r, "amount": -1.0}]}, "instances[0].amount: -1 is negative"),
    ("amount as text", lambda r: {**r, "amount": "12"}, "body.amount: expected a number, got string '12'"),
    ("unknown channel", lambda r: {**r, "channel": "fax"}, "body.channel: unknown value 'fax'"),
    ("empty key", lambda r: {**r, "terminal_id": " "}, "body.terminal_id: empty text"),
    ("unknown column", lambda r: {**r, "colour": 1}, "unknown column(s) ['colour']"),
    ("a list row", lambda r: {"instances": [list(r.values())]}, "instances[0]: expected an object"),
]


@pytest.mark.parametrize(("case", "body", "message"), BAD, ids=[case[0] for case in BAD])
def test_a_bad_transaction_gets_a_400_naming_the_field(
    sqlite_server: ServerProcess, model: TransactionModel, case: str, body: Any, message: str
) -> None:
    response = requests.post(sqlite_server.url + V1, json=body(model.source_row(0)), timeout=10)
    assert response.status_code == 400, response.text
    assert message in response.json()["error"]


def test_a_bad_v2_transaction_gets_a_400_naming_the_input(
    sqlite_server: ServerProcess, model: TransactionModel
) -> None:
    row = model.source_row(0)
    missing = requests.post(sqlite_server.url + V2, json=v2_body(_without(row, "terminal_id")), timeout=10)
    assert missing.status_code == 400 and "missing inputs ['terminal_id']" in missing.json()["error"]
    body, headers = binary_v2({**row, "amount": math.inf})
    infinite = requests.post(sqlite_server.url + V2, data=body, headers=headers, timeout=10)
    assert infinite.status_code == 400, infinite.text
    assert "input 'amount' element 0: inf is not a finite number" in infinite.json()["error"]
    body, headers = binary_v2(row)  # the same transaction, well formed, is scored
    assert requests.post(sqlite_server.url + V2, data=body, headers=headers, timeout=10).status_code == 200


def _metric(server: ServerProcess, name: str) -> float:
    text = requests.get(server.url + "/metrics", timeout=5).text
    return sum(float(value) for value in re.findall(rf"^{name}(?:{{[^}}]*}})? (\S+)$", text, re.MULTILINE))


def test_a_store_that_cannot_be_reached_gives_503_a_failing_readiness_and_the_metric(
    model: TransactionModel, tmp_path: Path
) -> None:
    env = {"FRAUD_FEATURE_STORE_URL": f"redis://127.0.0.1:{free_port()}/0", "FRAUD_FEATURE_STORE_TIMEOUT": "0.5"}
    server = ServerProcess(str(model.directory), tmp_path / "server.log", env)
    try:
        server.wait_live()
        answer: dict[str, Any] = {}

        def refused() -> bool:
            answer["response"] = requests.post(server.url + V1, json={"instances": [model.source_row(0)]}, timeout=10)
            return "feature store" in answer["response"].text

        server.wait_until(refused, what="a feature-store error")
        response = answer["response"]
        assert response.status_code == 503
        assert "feature store unavailable: the Redis feature store at 127.0.0.1" in response.json()["error"]
        assert server.status("/v2/health/ready") == 503
        assert server.status(f"/v1/models/{NAME}") == 503
        assert server.status(f"/v2/models/{NAME}/ready") == 503
        assert _metric(server, "fraud_feature_store_errors_total") >= 2
        assert _metric(server, "fraud_feature_store_up") == 0
        assert server.status("/v2/health/live") == 200
    finally:
        server.stop()


def test_a_replay_against_redis_with_auth_and_the_stream_applying_gives_the_offline_probability(
    model: TransactionModel, tmp_path: Path
) -> None:
    import redis

    password = "s3cret:/@"
    with redis_server() as url:
        redis.Redis.from_url(url).config_set("requirepass", password)
        env = {
            "FRAUD_FEATURE_STORE_URL": url,
            "FRAUD_FEATURE_STORE_PASSWORD": password,
            "FRAUD_FEATURE_STORE_WRITE": "false",
        }
        server = ServerProcess(str(model.directory), tmp_path / "server.log", env)
        store = RedisStateStore(redis_url(url, password), horizon=feature_set().horizon)
        try:
            server.wait_ready()
            replay(server, model, store, stream_applies=True)
            assert _metric(server, "fraud_feature_store_errors_total") == 0
            assert password not in server.logs()
        finally:
            store.close()
            server.stop()


def test_a_store_url_of_another_kind_leaves_the_model_unloaded_with_the_reason(model: TransactionModel) -> None:
    from serving.predictor import FraudModel
    from serving.settings import ServingSettings

    settings = ServingSettings(model_uri=str(model.directory), feature_store_url="http://cache:6379")
    predictor = FraudModel(settings)
    assert predictor.load() is False
    assert predictor.ready is False
    assert "feature_store_url must be redis://, rediss:// or unix://, got 'http'" in (predictor.load_error or "")


def test_memorystore_settings_tls_with_its_ca_and_auth_from_a_file_and_a_foreign_ca_is_refused(
    model: TransactionModel, tmp_path: Path
) -> None:
    """The transactions overlay's settings: ``rediss://``, the server CA and the AUTH string as mounted files."""
    import redis

    from tests.conftest import make_certificates

    password_file = tmp_path / "auth-string"
    password_file.write_text("an-auth-string\n")
    foreign_ca, _, _ = make_certificates(tmp_path / "foreign", name="foreign")
    with redis_server(tls=tmp_path / "tls") as url:
        ca_file = tmp_path / "tls" / "ca.pem"
        redis.Redis.from_url(url, ssl_ca_certs=str(ca_file)).config_set("requirepass", "an-auth-string")
        env = {
            "FRAUD_FEATURE_STORE_URL": url,
            "FRAUD_FEATURE_STORE_PASSWORD_FILE": str(password_file),
            "FRAUD_FEATURE_STORE_CA_FILE": str(ca_file),
            "FRAUD_FEATURE_STORE_TIMEOUT": "2",
        }
        server = ServerProcess(str(model.directory), tmp_path / "server.log", env)
        try:
            server.wait_ready()
            answer = requests.post(server.url + V1, json={"instances": [model.source_row(0)]}, timeout=10)
            assert answer.status_code == 200, answer.text
            assert _metric(server, "fraud_feature_store_errors_total") == 0
        finally:
            server.stop()
        env["FRAUD_FEATURE_STORE_CA_FILE"] = str(foreign_ca)
        refused = ServerProcess(str(model.directory), tmp_path / "refused.log", env)
        try:
            refused.wait_live()
            answer: dict[str, Any] = {}

            def refused_by_the_store() -> bool:
                body = {"instances": [model.source_row(0)]}
                answer["response"] = requests.post(refused.url + V1, json=body, timeout=10)
                return "feature store" in answer["response"].text

            refused.wait_until(refused_by_the_store, what="a feature-store error")
            assert answer["response"].status_code == 503
            assert "certificate verify failed" in answer["response"].json()["error"].lower()
            assert refused.status("/v2/health/ready") == 503
            assert "an-auth-string" not in refused.logs()
        finally:
            refused.stop()


@pytest.mark.slow
def test_a_traced_request_has_a_features_span_and_a_sampled_out_one_none(
    model: TransactionModel, otlp_receiver: OtlpReceiver, tmp_path: Path
) -> None:
    env = {
        "FRAUD_FEATURE_STORE_PATH": str(tmp_path / "state.db"),
        "FRAUD_TRACING_EXPORTER": "otlp",
        "FRAUD_OTLP_ENDPOINT": otlp_receiver.endpoint,
    }
    server = ServerProcess(str(model.directory), tmp_path / "server.log", env)
    try:
        server.wait_ready()
        body = {"instances": [model.source_row(model.test_start)]}
        traced, sampled_out = secrets.token_hex(16), secrets.token_hex(16)
        for trace_id, flags in ((sampled_out, "00"), (traced, "01")):
            headers = {"traceparent": f"00-{trace_id}-{secrets.token_hex(8)}-{flags}"}
            response = requests.post(server.url + V1, json=body, headers=headers, timeout=10)
            assert response.status_code == 200, response.text
        names = sorted(s.name for s in otlp_receiver.spans_of_trace(traced, timeout=2.0, at_least=4))
        assert names == ["POST /v1/models/{model_name}:predict", "features", "predict"], names
        assert otlp_receiver.spans_of_trace(sampled_out, timeout=0.5, at_least=1) == []
    finally:
        server.stop()
