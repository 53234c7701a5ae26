"""The loop overlay: the joiner, the controller, the AlertmanagerConfig and the InferenceService's logger.
Rendered, validated and audited like the other overlays, plus a wiring check (Alertmanager reaches the
controller's port with the token the controller reads from the same Secret, only Alertmanager's namespace gets
in, the joiner reads the topics the log and the labels go to) shown to fail on broken copies."""

from __future__ import annotations

import re
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest

from tests.monitoring.rules import LOOP_ALERTS

from .checks import MANIFESTS, broken_overlay, check_inference_service, kustomize, security_problems, validate_core
from .test_manifests import CORE_RESOURCES

OVERLAY = MANIFESTS / "overlays" / "loop"
ALERTMANAGER_NAMESPACE = "monitoring"


def _one(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any]:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name]
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def _container(docs: list[dict[str, Any]], name: str) -> tuple[dict[str, Any], dict[str, Any], dict[str, str]]:
    """The pod template of Deployment ``name``, its one container, and that container's env values."""
    pod = _one(docs, "Deployment", name)["spec"]["template"]
    [container] = pod["spec"]["containers"]
    return pod, container, {e["name"]: e.get("value", "") for e in container.get("env", [])}


def _token_problems(
    pod: dict[str, Any], container: dict[str, Any], env: dict[str, str], secret: dict[str, str]
) -> list[str]:
    """The controller reads the token file from a volume of the Secret Alertmanager's credentials name."""
    problems = []
    if any("valueFrom" in e for e in container.get("env", [])):
        problems.append("the controller takes a value from a Secret as an env variable: the token must be a file")
    folder, _, file = env.get("FRAUD_TOKEN_FILE", "").rpartition("/")
    mount = next((m for m in container.get("volumeMounts", []) if m["mountPath"] == folder), None)
    volume = next((v for v in pod["spec"].get("volumes", []) if mount and v["name"] == mount["name"]), None)
    source = (volume or {}).get("secret")
    if source is None:
        problems.append(f"the token file {env.get('FRAUD_TOKEN_FILE')!r} is not on a Secret volume")
    elif source["secretName"] != secret["name"]:
        problems.append(
            f"the token file comes from Secret {source['secretName']}, Alertmanager's from {secret['name']}"
        )
    elif {"key": secret["key"], "path": file} not in source.get("items", []):
        problems.append(f"the token file {file!r} is not the Secret's key {secret['key']!r}")
    return problems


def loop_problems(docs: list[dict[str, Any]]) -> list[str]:
    """What would break the loop on the cluster even though every resource is valid on its own."""
    problems = []
    pod, container, env = _container(docs, "fraud-loop-controller")
    service = _one(docs, "Service", "fraud-loop-controller")
    webhook = _one(docs, "AlertmanagerConfig", "fraud-loop")["spec"]["receivers"][0]["webhookConfigs"][0]
    url = urlsplit(webhook["url"])
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    service_port = next((p for p in service["spec"]["ports"] if p["port"] == url.port), None)
    if url.hostname != f"{service['metadata']['name']}.{service['metadata']['namespace']}.svc.cluster.local":
        problems.append(f"Alertmanager posts to {url.hostname}, not the controller's Service")
    if service_port is None:
        problems.append(f"Alertmanager posts to port {url.port}, the controller's Service has none")
    elif ports.get(service_port["targetPort"], service_port["targetPort"]) != int(env.get("FRAUD_PORT", "0")):
        problems.append(
            f"the Service sends port {url.port} to {service_port['targetPort']}, "
            f"the controller listens on {env.get('FRAUD_PORT')}"
        )
    if url.path != "/alerts":
        problems.append(f"Alertmanager posts to {url.path}, the controller's webhook is /alerts")
    if not service["spec"]["selector"].items() <= pod["metadata"]["labels"].items():
        problems.append("the controller's Service selects no controller pod")
    if env.get("FRAUD_HOST") != "0.0.0.0":
        problems.append("the controller listens on 127.0.0.1 only: Alertmanager cannot reach it")
    problems += _token_problems(pod, container, env, webhook["httpConfig"]["authorization"]["credentials"])
    policies = [
        p
        for p in docs
        if p["kind"] == "NetworkPolicy"
        and p["spec"]["podSelector"].get("matchLabels", {}).items() <= pod["metadata"]["labels"].items()
    ]
    for policy in policies:
        for rule in policy["spec"].get("ingress", []):
            sources = rule.get("from", [])
            allowed = [
                expression["values"]
                for source in sources
                for expression in source.get("namespaceSelector", {}).get("matchExpressions", [])
            ]
            if len(sources) != 1 or set(sources[0]) != {"namespaceSelector"} or allowed != [[ALERTMANAGER_NAMESPACE]]:
                problems.append(
                    f"NetworkPolicy {policy['metadata']['name']} admits {sources}, not only {ALERTMANAGER_NAMESPACE}"
                )
            if [p["port"] for p in rule.get("ports", [])] != [int(env.get("FRAUD_PORT", "0"))]:
                problems.append(
                    f"NetworkPolicy {policy['metadata']['name']} opens {rule.get('ports')}, not the controller's port"
                )
    if not policies:
        problems.append("no NetworkPolicy guards the controller")
    if not env.get("FRAUD_RETRAIN_COMMAND", "").startswith("fraud submit "):
        problems.append(f"the controller retrains with {env.get('FRAUD_RETRAIN_COMMAND')!r}, not `fraud submit`")
    problems += _route_problems(docs)
    problems += _joiner_problems(docs, env)
    problems += _prediction_log_problems(docs)
    return problems


def _prediction_log_problems(docs: list[dict[str, Any]]) -> list[str]:
    """The predictor and the stream scorer write their prediction records where the joiner reads them."""
    joiner = _container(docs, "fraud-joiner")[2]
    isvc = _one(docs, "InferenceService", "fraud-champion")["spec"]["predictor"]["containers"][0]
    writers = {
        "the predictor": {e["name"]: e.get("value", "") for e in isvc.get("env", [])},
        "the stream scorer": _container(docs, "fraud-stream-scorer")[2],
    }
    problems = []
    for who, env in writers.items():
        for setting, read in (
            ("FRAUD_PREDICTION_LOG_BOOTSTRAP_SERVERS", "FRAUD_BOOTSTRAP_SERVERS"),
            ("FRAUD_PREDICTION_LOG_TOPIC", "FRAUD_RECORDS_TOPIC"),
        ):
            if env.get(setting) != joiner.get(read):
                problems.append(f"{who} logs to {setting}={env.get(setting)!r}, the joiner reads {joiner.get(read)!r}")
    return problems


def _route_problems(docs: list[dict[str, Any]]) -> list[str]:
    """Every loop alert that acts carries an ``action`` the route sends to the controller."""
    route = _one(docs, "AlertmanagerConfig", "fraud-loop")["spec"]["route"]
    [matcher] = route["matchers"]
    rules = _one(docs, "PrometheusRule", "fraud-detection")["spec"]["groups"]
    acting = {r["alert"]: r["labels"].get("action") for g in rules for r in g["rules"] if r.get("alert") in LOOP_ALERTS}
    problems = []
    for alert, action in acting.items():
        if action is None:
            continue
        sent = re.fullmatch(matcher["value"], action) if matcher["matchType"] == "=~" else matcher["value"] == action
        if matcher["name"] != "action" or not sent:
            problems.append(f"{alert} (action {action}) is not routed to the controller")
    if route["receiver"] != "fraud-loop-controller":
        problems.append(f"the route sends to {route['receiver']}")
    return problems


def _joiner_problems(docs: list[dict[str, Any]], controller_env: dict[str, str]) -> list[str]:
    problems = []
    pod, container, env = _container(docs, "fraud-joiner")
    if container["command"] != ["python", "-m", "monitor.joiner", "run"]:
        problems.append(f"the joiner runs {container['command']}")
    for setting, topic in (("FRAUD_RECORDS_TOPIC", "fraud-predictions"), ("FRAUD_LABELS_TOPIC", "fraud-labels")):
        if env.get(setting) != topic:
            problems.append(f"the joiner reads {env.get(setting)!r} as {setting}, not {topic!r}")
    if controller_env.get("FRAUD_JOIN_DB") != env.get("FRAUD_DB"):
        problems.append(
            f"the controller reads the store {controller_env.get('FRAUD_JOIN_DB')}, "
            f"the joiner writes {env.get('FRAUD_DB')}"
        )
    for setting in ("FRAUD_MATURITY_HOURS", "FRAUD_COHORT_DAYS"):
        if controller_env.get(setting) != env.get(setting):
            problems.append(f"{setting}: the controller judges another cohort than the joiner's")
    ports = {p["name"] for p in container["ports"]} | {p["containerPort"] for p in container["ports"]}
    if int(env.get("FRAUD_METRICS_PORT", "0")) not in ports or env.get("FRAUD_METRICS_HOST") != "0.0.0.0":
        problems.append("the joiner's /metrics is not on its container port")
    service = _one(docs, "Service", "fraud-joiner-metrics")
    for monitor in (
        d for d in docs if d["kind"] in {"PodMonitoring", "ServiceMonitor"} and d["metadata"]["name"] == "fraud-joiner"
    ):
        target = ports if monitor["kind"] == "PodMonitoring" else {p["name"] for p in service["spec"]["ports"]}
        if not monitor["spec"]["selector"]["matchLabels"].items() <= pod["metadata"]["labels"].items():
            problems.append(f"{monitor['kind']}/fraud-joiner selects no joiner pod")
        problems += [
            f"{monitor['kind']}/fraud-joiner scrapes port {e['port']!r}"
            for e in monitor["spec"]["endpoints"]
            if e["port"] not in target
        ]
    isvc = _one(docs, "InferenceService", "fraud-champion")
    logger = isvc["spec"]["predictor"].get("logger", {})
    sinks = {
        f"http://kafka-sink-ingress.knative-eventing.svc.cluster.local/{d['metadata']['namespace']}/{d['metadata']['name']}"
        for d in docs
        if d["kind"] == "KafkaSink"
    }
    if logger.get("mode") != "all" or logger.get("url") not in sinks:
        problems.append(f"the InferenceService logs {logger} , not every call to a KafkaSink ({sorted(sinks)})")
    return problems


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return kustomize(OVERLAY)


def test_the_overlay_renders_the_joiner_the_controller_and_their_wiring(rendered: list[dict[str, Any]]) -> None:
    kinds = {(d["kind"], d["metadata"]["name"]) for d in rendered}
    for expected in [
        *CORE_RESOURCES,
        ("Deployment", "fraud-stream-scorer"),  # the streaming overlay it builds on
        ("Deployment", "fraud-joiner"),
        ("Service", "fraud-joiner-metrics"),
        ("NetworkPolicy", "fraud-joiner-metrics"),
        ("PodMonitoring", "fraud-joiner"),
        ("ServiceMonitor", "fraud-joiner"),
        ("Deployment", "fraud-loop-controller"),
        ("Service", "fraud-loop-controller"),
        ("NetworkPolicy", "fraud-loop-controller"),
        ("ServiceAccount", "fraud-loop-controller"),
        ("PersistentVolumeClaim", "fraud-loop-state"),
        ("AlertmanagerConfig", "fraud-loop"),
        ("KafkaSink", "fraud-inference-log"),
    ]:
        assert expected in kinds, f"the loop overlay lacks {expected}"
    assert not [d for d in rendered if d["kind"] == "Secret"], "the token's Secret is created out of band"
    account = _one(rendered, "ServiceAccount", "fraud-loop-controller")
    assert account["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(".iam.gserviceaccount.com")


def test_core_resources_validate_strictly_and_the_audit_is_clean(rendered: list[dict[str, Any]]) -> None:
    assert validate_core(rendered) == []
    assert security_problems(rendered) == []
    isvc = check_inference_service(_one(rendered, "InferenceService", "fraud-champion"))
    assert isvc.spec.predictor.logger.mode == "all"


def test_alertmanager_the_controller_the_joiner_and_the_logger_are_wired_together(
    rendered: list[dict[str, Any]],
) -> None:
    assert loop_problems(rendered) == []


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        (
            "controller.yaml",
            '                values: ["monitoring"]\n',
            '                values: ["monitoring", "default"]\n',
            "not only monitoring",
        ),
        (
            "controller.yaml",
            "    - name: http\n      port: 9200\n",
            "    - name: http\n      port: 80\n",
            "port 9200, the controller's Service has none",
        ),
        (
            "controller.yaml",
            "            secretName: fraud-controller-token\n",
            "            secretName: other-token\n",
            "comes from Secret other-token",
        ),
        (
            "controller.yaml",
            "              value: /etc/fraud-controller/token\n",
            "              value: /tmp/token\n",
            "not on a Secret volume",
        ),
        (
            "controller.yaml",
            "              value: /var/lib/fraud-loop/join.sqlite\n",
            "              value: /tmp/join.sqlite\n",
            "the controller reads the store",
        ),
        (
            "alertmanagerconfig.yaml",
            'value: "retrain|rollback|promote"',
            'value: "retrain|rollback"',
            "FraudShadowChallengerWins (action promote) is not routed",
        ),
        ("alertmanagerconfig.yaml", ":9200/alerts", ":9200/", "the controller's webhook is /alerts"),
        (
            "joiner.yaml",
            "              value: fraud-labels\n",
            "              value: labels\n",
            "'labels' as FRAUD_LABELS_TOPIC",
        ),
        ("kustomization.yaml", "/fraud/fraud-inference-log", "/fraud/other", "not every call to a KafkaSink"),
        (
            "kustomization.yaml",
            "          value: fraud-predictions\n",
            "          value: predictions\n",
            "the predictor logs to FRAUD_PREDICTION_LOG_TOPIC='predictions'",
        ),
        (
            "kustomization.yaml",
            "          value: kafka-kafka-bootstrap.kafka.svc.cluster.local:9092\n"
            "      - op: add\n        path: /spec/template",
            "          value: other:9092\n      - op: add\n        path: /spec/template",
            "the stream scorer logs to FRAUD_PREDICTION_LOG_BOOTSTRAP_SERVERS='other:9092'",
        ),
    ],
)
def test_the_wiring_check_fails_on_a_broken_copy(tmp_path: Path, file: str, old: str, new: str, expected: str) -> None:
    problems = loop_problems(broken_overlay(tmp_path, "loop", f"overlays/loop/{file}", old, new))
    assert any(expected in p for p in problems), problems
