"""No span lost: under concurrent load every request's trace reaches a real OTLP receiver, whole."""

from __future__ import annotations

from collections import Counter
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

import pytest
import requests

from fraud_detection.schema import FEATURES
from tests.serving.conftest import ServerProcess
from tests.serving.otlp import OtlpReceiver

pytestmark = pytest.mark.slow

REQUESTS = 500
PREDICT = "/v1/models/fraud-detector:predict"
SERVER_SPAN = "POST /v1/models/{model_name}:predict"


def test_every_request_under_load_exports_its_server_and_predict_spans(model_dir: Path, tmp_path: Path) -> None:
    receiver = OtlpReceiver()
    env = {"FRAUD_TRACING_EXPORTER": "otlp", "FRAUD_OTLP_ENDPOINT": receiver.endpoint, "FRAUD_GCP_PROJECT": "p"}
    server = ServerProcess(str(model_dir), tmp_path / "server.log", env)
    try:
        server.wait_ready()
        body = {"instances": [dict.fromkeys(FEATURES, 0.5)]}

        def post(i: int) -> int:
            path = "/predict" if i % 2 else PREDICT  # the legacy path is traced the same way
            return requests.post(
                server.url + path, json=body["instances"][0] if i % 2 else body, timeout=30
            ).status_code

        with ThreadPoolExecutor(max_workers=16) as pool:
            statuses = Counter(pool.map(post, range(REQUESTS)))
        assert statuses == {200: REQUESTS}
        receiver.settled_count()
        with receiver._lock:
            spans = list(receiver.spans)
        by_trace = Counter(span.trace_id.hex() for span in spans)
        assert len(by_trace) == REQUESTS, "one trace per request"
        assert set(by_trace.values()) == {2}, "each trace holds its server span and its predict span"
        assert Counter(span.name for span in spans) == {SERVER_SPAN: REQUESTS, "predict": REQUESTS}
        server.wait_until(
            lambda: sum(r.get("event") == "prediction" for r in server.log_records()) == REQUESTS,
            timeout=15,
            what="one log line per request",
        )
        logged = {r["logging.googleapis.com/trace"].rsplit("/", 1)[-1] for r in server.log_records() if "event" in r}
        assert logged == set(by_trace), "every log line names its request's trace"
    finally:
        server.stop()
        receiver.stop()
