"""The streaming overlay: the scorer Deployment scaled by KEDA on consumer lag, the KafkaSource route to the
InferenceService, and the monitoring component. Rendered, validated and audited like the other overlays, plus a
consistency check (the scaler watches what the scorer consumes, monitors select what runs) shown to fail."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from .checks import MANIFESTS, broken_overlay, kustomize, security_problems, validate_core
from .test_manifests import CORE_RESOURCES

OVERLAY = MANIFESTS / "overlays" / "streaming"
DASHBOARD = MANIFESTS / "components" / "monitoring" / "fraud-detection-dashboard.json"


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _env(container: dict[str, Any]) -> dict[str, str]:
    return {e["name"]: e.get("value", "") for e in container.get("env", [])}


def streaming_problems(docs: list[dict[str, Any]]) -> list[str]:
    """What would break stream scoring on the cluster even though every resource is valid on its own."""
    problems = []
    scorer = _one(docs, "Deployment", "fraud-stream-scorer")
    pod = scorer["spec"]["template"]
    container = next(c for c in pod["spec"]["containers"] if c["name"] == "scorer")
    env = _env(container)
    isvc = _one(docs, "InferenceService", "fraud-champion")
    isvc_env = _env(isvc["spec"]["predictor"]["containers"][0])
    if container["command"] != ["python", "-m", "streaming"]:
        problems.append(f"the scorer runs {container['command']}, not the stream scorer")
    if env.get("FRAUD_MODEL_URI") != isvc_env.get("STORAGE_URI"):
        problems.append(f"the scorer loads {env.get('FRAUD_MODEL_URI')}, the predictor {isvc_env.get('STORAGE_URI')}")
    if container["image"] != isvc["spec"]["predictor"]["containers"][0]["image"]:
        problems.append("the scorer and the predictor run different images")
    scaled = _one(docs, "ScaledObject", "fraud-stream-scorer")
    if scaled["spec"]["scaleTargetRef"]["name"] != scorer["metadata"]["name"]:
        problems.append(f"KEDA scales {scaled['spec']['scaleTargetRef']['name']}, not the scorer")
    trigger = scaled["spec"]["triggers"][0]
    meta = trigger["metadata"]
    if trigger["type"] != "kafka":
        problems.append(f"the trigger is {trigger['type']}, not KEDA's Kafka scaler")
    for key, setting in (("topic", "FRAUD_INPUT_TOPIC"), ("consumerGroup", "FRAUD_GROUP_ID")):
        if meta.get(key) != env.get(setting):
            problems.append(f"KEDA watches {key} {meta.get(key)!r}, the scorer uses {env.get(setting)!r}")
    if meta.get("bootstrapServers") != env.get("FRAUD_BOOTSTRAP_SERVERS"):
        problems.append("KEDA and the scorer talk to different brokers")
    source = _one(docs, "KafkaSource", "fraud-transactions")
    sink = source["spec"]["sink"]
    if (sink.get("ref") or {}).get("kind") != "InferenceService" or sink["ref"]["name"] != isvc["metadata"]["name"]:
        problems.append(f"the KafkaSource delivers to {sink}, not the InferenceService")
    if sink.get("uri") != f"/v1/models/{isvc_env.get('FRAUD_MODEL_NAME')}:predict":
        problems.append(f"the KafkaSource posts to {sink.get('uri')}, not the predictor's V1 route")
    # Each monitor selects pods (or the Service of pods) that run, and scrapes a port they have. KServe labels the
    # predictor's pods and Service with serving.kserve.io/inferenceservice; its port is 8080.
    predictor_labels = {"serving.kserve.io/inferenceservice": isvc["metadata"]["name"]}
    service = _one(docs, "Service", "fraud-stream-scorer-metrics")
    scorer_ports = {
        "PodMonitoring": {p["name"] for p in container.get("ports", [])}
        | {p["containerPort"] for p in container["ports"]},
        "ServiceMonitor": {p["name"] for p in service["spec"]["ports"]},
    }
    for monitor in (d for d in docs if d["kind"] in scorer_ports):
        kind, name = monitor["kind"], monitor["metadata"]["name"]
        selector = monitor["spec"]["selector"]["matchLabels"]
        if selector.items() <= pod["metadata"]["labels"].items():
            allowed = scorer_ports[kind]
        elif selector.items() <= predictor_labels.items():
            allowed = {8080}
        else:
            problems.append(f"{kind}/{name} selects {selector}: nothing runs with those labels")
            continue
        for endpoint in monitor["spec"]["endpoints"]:
            port = endpoint.get("port", endpoint.get("targetPort"))
            if port not in allowed:
                problems.append(f"{kind}/{name} scrapes port {port!r}, the target has {sorted(map(str, allowed))}")
    return problems


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return kustomize(OVERLAY)


def test_the_overlay_renders_the_scorer_its_scaler_the_source_and_the_monitoring(
    rendered: list[dict[str, Any]],
) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    for expected in [
        *CORE_RESOURCES,  # the gke overlay it builds on
        ("Deployment", "fraud-stream-scorer"),
        ("Service", "fraud-stream-scorer-metrics"),
        ("NetworkPolicy", "fraud-stream-scorer-metrics"),
        ("ScaledObject", "fraud-stream-scorer"),
        ("KafkaSource", "fraud-transactions"),
        ("ServiceMonitor", "fraud-champion"),
        ("ServiceMonitor", "fraud-stream-scorer"),
        ("PodMonitoring", "fraud-champion"),
        ("PodMonitoring", "fraud-stream-scorer"),
        ("PrometheusRule", "fraud-detection"),
        ("ConfigMap", "fraud-detection-dashboard"),
    ]:
        assert expected in kinds, f"the streaming overlay lacks {expected}"
    dashboard = _one(rendered, "ConfigMap", "fraud-detection-dashboard")
    assert dashboard["metadata"]["labels"]["grafana_dashboard"] == "1"
    assert json.loads(dashboard["data"][DASHBOARD.name]) == json.loads(DASHBOARD.read_text())
    policy = _one(rendered, "NetworkPolicy", "fraud-champion-ingress")
    allowed = policy["spec"]["ingress"][0]["from"][0]["namespaceSelector"]["matchExpressions"][0]["values"]
    assert "knative-eventing" in allowed


def test_core_resources_validate_strictly_and_the_audit_is_clean(rendered: list[dict[str, Any]]) -> None:
    assert validate_core(rendered) == []
    assert security_problems(rendered) == []


def test_the_scaler_the_source_and_the_monitors_agree_with_what_runs(rendered: list[dict[str, Any]]) -> None:
    assert streaming_problems(rendered) == []


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        (
            "overlays/streaming/scaledobject.yaml",
            "        topic: transactions\n",
            "        topic: payments\n",
            "KEDA watches topic 'payments'",
        ),
        (
            "overlays/streaming/scaledobject.yaml",
            "        consumerGroup: fraud-scorer\n",
            "        consumerGroup: other\n",
            "consumerGroup 'other'",
        ),
        (
            "overlays/streaming/scaledobject.yaml",
            "    name: fraud-stream-scorer\n  minReplicaCount",
            "    name: mlflow\n  minReplicaCount",
            "KEDA scales mlflow",
        ),
        (
            "overlays/streaming/kafkasource.yaml",
            "    uri: /v1/models/fraud-detector:predict\n",
            "    uri: /predict\n",
            "not the predictor's V1 route",
        ),
        (
            "overlays/streaming/scorer.yaml",
            '          command: ["python", "-m", "streaming"]\n',
            '          command: ["python", "-m", "serving"]\n',
            "not the stream scorer",
        ),
        (
            "components/monitoring/podmonitoring.yaml",
            "    - port: metrics\n",
            "    - port: http\n",
            "scrapes port 'http'",
        ),
        ("components/monitoring/podmonitoring.yaml", "    - port: 8080\n", "    - port: 9090\n", "scrapes port 9090"),
        (
            "components/monitoring/servicemonitor.yaml",
            "    - targetPort: 8080\n",
            "    - targetPort: 80\n",
            "scrapes port 80",
        ),
        (
            "components/monitoring/servicemonitor.yaml",
            "      app.kubernetes.io/name: fraud-stream-scorer\n",
            "      app.kubernetes.io/name: scorer\n",
            "nothing runs with those labels",
        ),
    ],
)
def test_the_consistency_check_fails_on_a_broken_copy(
    tmp_path: Path, file: str, old: str, new: str, expected: str
) -> None:
    problems = streaming_problems(broken_overlay(tmp_path, "streaming", file, old, new))
    assert any(expected in p for p in problems), problems


def test_the_serving_image_carries_the_scorer_it_runs(rendered: list[dict[str, Any]]) -> None:
    dockerfile = (MANIFESTS.parent / "serving" / "Dockerfile").read_text()
    requirements = (MANIFESTS.parent / "serving" / "requirements.txt").read_text().split()
    assert "COPY streaming ./streaming" in dockerfile
    assert "streaming.main" in dockerfile and "confluent_kafka" in dockerfile  # the build's import check
    assert "confluent-kafka" in requirements
    container = _one(rendered, "Deployment", "fraud-stream-scorer")["spec"]["template"]["spec"]["containers"][0]
    port = container["ports"][0]["containerPort"]
    assert str(port) in next(line for line in dockerfile.splitlines() if line.startswith("EXPOSE")).split()
    assert _env(container)["FRAUD_PORT"] == str(port)
