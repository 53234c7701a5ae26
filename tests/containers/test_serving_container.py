"""The predictor in the serving image, as KServe runs it: these are the cluster's conditions, met here first.

Model directory read-only at /mnt/models, read-only root filesystem with only /tmp writable, the image's
non-root user, port 8080 (published on 127.0.0.1 only). The protocol checks reuse tests/serving's helpers.
"""

from __future__ import annotations

import json
import secrets
from pathlib import Path
from typing import Any

import pytest
import requests

from fraud_detection.modeldir import MODEL_FILE
from tests.containers.conftest import IMAGE_UID, ServingContainer, Starter, readable_copy
from tests.serving import cases
from tests.serving.cases import EXPLAIN, V1, V2, ProcessClient, check_v1, check_v2, named, post, rows
from tests.serving.conftest import MODEL_VERSION, OtlpReceiver, make_model_dir
from tests.serving.test_lifecycle import NAME, assert_not_ready

pytestmark = [pytest.mark.containers, pytest.mark.slow]


@pytest.fixture(scope="module")
def served_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A real model directory the image's user can read."""
    trained = make_model_dir(tmp_path_factory.mktemp("trained"))
    return readable_copy(trained, tmp_path_factory.mktemp("served") / "model")


@pytest.fixture(scope="module")
def container(podman_env: dict[str, str], served_model: Path, otlp_receiver: OtlpReceiver) -> Any:
    """One ready serving container for the protocol tests, tracing to a real OTLP receiver on this machine."""
    from tests.containers.conftest import SERVING_IMAGE, require_image

    require_image(podman_env, SERVING_IMAGE)
    settings = {
        "FRAUD_TRACING_EXPORTER": "otlp",
        "FRAUD_OTLP_ENDPOINT": f"http://10.0.2.2:{otlp_receiver.port}",
        "FRAUD_GCP_PROJECT": "test-project",
        "FRAUD_MAX_BATCH_ROWS": "50",
    }
    server = ServingContainer(podman_env, served_model, settings)
    try:
        server.wait_ready()
        yield server
    finally:
        server.stop()


def test_runs_as_the_images_non_root_user_with_a_read_only_root(container: ServingContainer) -> None:
    info = container.inspect()
    assert info["Config"]["User"] == f"{IMAGE_UID}:{IMAGE_UID}"
    assert info["HostConfig"]["ReadonlyRootfs"] is True
    assert container.exec("id", "-u").stdout.strip() == str(IMAGE_UID)
    # The root filesystem and the model refuse writes; /tmp (tmpfs) takes them.
    for path in ("/opt/venv/probe", "/mnt/models/probe", "/probe"):
        result = container.exec("python", "-c", f"open({path!r}, 'w')")
        assert result.returncode != 0 and "Read-only file system" in result.stderr, (path, result.stderr)
    assert container.exec("python", "-c", "open('/tmp/probe', 'w').write('x')").returncode == 0
    # Published on 127.0.0.1 only.
    bindings = info["HostConfig"]["PortBindings"]["8080/tcp"]
    assert [b["HostIp"] for b in bindings] == ["127.0.0.1"]


def test_the_image_carries_the_labels_make_images_gives(podman_env: dict[str, str]) -> None:
    from containers.build import image_labels
    from tests.containers.conftest import SERVING_IMAGE, podman

    inspected = json.loads(podman(podman_env, "image", "inspect", SERVING_IMAGE).stdout)[0]
    labels = inspected["Config"]["Labels"] or {}
    expected = image_labels("serving", SERVING_IMAGE.rsplit(":", 1)[1])
    assert {key: labels.get(key) for key in expected} == expected


def test_the_image_holds_no_build_time_pip_settings_or_ca_bundle(container: ServingContainer) -> None:
    """containers/build.py mounts pip.conf, the CA bundle and local index folders into the build: none stays."""
    for path in ("/etc/pip.conf", "/run/fraud-build", "/root/.cache/pip", "/tmp/.cache/pip"):
        result = container.exec("test", "-e", path)
        assert result.returncode != 0, f"{path} leaked into the image"
    assert container.exec("ls", "/opt").stdout.split() == ["venv"]


def test_readiness_before_and_after_load(start_serving: Starter, tmp_path: Path, served_model: Path) -> None:
    """An empty /mnt/models: live, not ready; the model appears (as the storage initializer would put it): ready."""
    models = tmp_path / "models"
    models.mkdir(mode=0o777)
    models.chmod(0o777)
    server = start_serving(models)
    server.wait_live()
    server.wait_until(
        lambda: any("model" in str(r.get("message", "")).lower() for r in server.log_records()), what="a load attempt"
    )
    assert_not_ready(server)  # type: ignore[arg-type]
    for item in served_model.iterdir():
        (models / item.name).write_bytes(item.read_bytes())
        (models / item.name).chmod(0o644)
    server.wait_ready()
    for path in ("/v2/health/ready", f"/v2/models/{NAME}/ready", f"/v1/models/{NAME}"):
        assert server.status(path) == 200, path
    check_v1(post(ProcessClient(server.url), V1, {"instances": named(rows(2))}), served_model, rows(2))


def test_corrupt_model_is_not_ready_and_the_container_stays_up(
    start_serving: Starter, tmp_path: Path, served_model: Path
) -> None:
    broken = readable_copy(served_model, tmp_path / "broken")
    (broken / MODEL_FILE).write_bytes(b"this is not a booster")
    server = start_serving(broken, FRAUD_LOAD_RETRY_SECONDS="0.3")
    server.wait_live()
    server.wait_until(
        lambda: sum("not a readable XGBoost model" in str(r.get("message")) for r in server.log_records()) >= 2,
        what="two failed attempts",
    )
    assert_not_ready(server)  # type: ignore[arg-type]
    assert server.running(), "the server must stay up, not crash-loop"
    failures = [r for r in server.log_records() if "not a readable XGBoost model" in str(r.get("message"))]
    assert failures and all(r["severity"] == "ERROR" for r in failures)
    assert "Traceback" not in server.logs()


def test_v1(container: ServingContainer, served_model: Path) -> None:
    x = rows(4, seed=1)
    check_v1(post(ProcessClient(container.url), V1, {"instances": named(x)}), served_model, x)
    check_v1(post(ProcessClient(container.url), V1, {"instances": x.tolist()}), served_model, x)


@pytest.mark.parametrize("path", [V1, "/predict"])
def test_flat_object(container: ServingContainer, served_model: Path, path: str) -> None:
    x = rows(1, seed=2)
    check_v1(post(ProcessClient(container.url), path, named(x)[0]), served_model, x)


def test_v2(container: ServingContainer, served_model: Path) -> None:
    x = rows(5, seed=3)
    tensor = {"name": "transactions", "shape": [5, 29], "datatype": "FP32", "data": x.tolist()}
    check_v2(post(ProcessClient(container.url), V2, {"inputs": [tensor]}), served_model, x)


def test_explain(container: ServingContainer, served_model: Path) -> None:
    x = rows(2, seed=6)
    response = post(ProcessClient(container.url), EXPLAIN, {"instances": named(x)})
    assert response.status_code == 200, response.text
    body = response.json()
    assert body["units"] == "log-odds"
    assert len(body["explanations"]) == 2
    assert all(len(e["contributions"]) == 29 for e in body["explanations"])


@cases.each_bad_input
def test_bad_input_is_refused(
    container: ServingContainer, path: str, body: Any, headers: dict[str, str] | None, status: int, words: list[str]
) -> None:
    cases.check_bad_input(ProcessClient(container.url), path, body, headers, status, words)


def test_spans_reach_an_otlp_receiver_and_logs_are_json(
    container: ServingContainer, otlp_receiver: OtlpReceiver
) -> None:
    trace_id, parent = secrets.token_hex(16), secrets.token_hex(8)
    headers = {"traceparent": f"00-{trace_id}-{parent}-01", "X-Request-Id": "container-traced-1"}
    response = requests.post(container.url + V1, json={"instances": named(rows(1))}, headers=headers, timeout=10)
    assert response.status_code == 200, response.text
    spans = otlp_receiver.spans_of_trace(trace_id, at_least=2)
    assert {s.name for s in spans} == {"POST /v1/models/{model_name}:predict", "predict"}
    server_span = next(s for s in spans if s.parent_span_id.hex() == parent)

    def traced() -> list[dict[str, Any]]:
        return [r for r in container.log_records() if str(r.get("logging.googleapis.com/trace", "")).endswith(trace_id)]

    container.wait_until(lambda: bool(traced()), timeout=10, what="the trace in the logs")
    (line,) = traced()
    assert line["event"] == "prediction"
    assert line["request_id"] == "container-traced-1"
    assert line["model_version"] == MODEL_VERSION
    assert line["logging.googleapis.com/trace"] == f"projects/test-project/traces/{trace_id}"
    assert line["logging.googleapis.com/spanId"] == server_span.span_id.hex()
    # Every line the server wrote is a JSON object (what Cloud Logging's agent parses).
    text_lines = [raw for raw in container.logs().splitlines() if raw.strip()]
    assert text_lines and all(raw.startswith("{") for raw in text_lines), text_lines[:5]
