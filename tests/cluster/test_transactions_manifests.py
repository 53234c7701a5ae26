"""The transactions overlay: the predictor and the stream scorer reach Memorystore for Redis with AUTH from a
Secret and in-transit TLS, and egress from those pods is limited to what they need. Rendered, validated and
audited like the other overlays, with a check of the wiring that is shown to fail on a broken copy."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from .checks import MANIFESTS, broken_overlay, kustomize, security_problems, validate_core

OVERLAY = MANIFESTS / "overlays" / "transactions"
SECRET = "fraud-feature-store"


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return kustomize(OVERLAY)


def _pods(docs: list[dict[str, Any]]) -> dict[str, tuple[dict[str, Any], dict[str, Any], dict[str, str]]]:
    """Each feature-store client: (its pod spec, its first container, the labels its pods carry), by role."""
    isvc = next(d for d in docs if d["kind"] == "InferenceService")
    predictor = isvc["spec"]["predictor"]
    pods = {
        "predictor": (predictor, predictor["containers"][0], {"serving.kserve.io/inferenceservice": "fraud-champion"})
    }
    for name in ("scorer", "applier"):  # the applier only in the transactions-applier overlay
        for deployment in (
            d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == f"fraud-stream-{name}"
        ):
            template = deployment["spec"]["template"]
            pods[name] = (template["spec"], template["spec"]["containers"][0], template["metadata"]["labels"])
    return pods


def _selects(policy: dict[str, Any], labels: dict[str, str]) -> bool:
    selector = policy["spec"]["podSelector"]
    if not selector.get("matchLabels", {}).items() <= labels.items():
        return False
    return all(
        labels.get(e["key"]) in e["values"] if e["operator"] == "In" else False
        for e in selector.get("matchExpressions", [])
    )


def feature_store_problems(docs: list[dict[str, Any]]) -> list[str]:
    """What would leak the AUTH string, skip TLS, or cut a client off from Memorystore."""
    problems = []
    policies = [d for d in docs if d["kind"] == "NetworkPolicy" and "Egress" in d["spec"].get("policyTypes", [])]
    for name, (pod, container, labels) in _pods(docs).items():
        env = {e["name"]: e for e in container.get("env", [])}
        url = env.get("FRAUD_FEATURE_STORE_URL", {}).get("value", "")
        if not url.startswith("rediss://"):
            problems.append(f"{name}: the store URL {url!r} is not TLS (rediss://)")
        if "FRAUD_FEATURE_STORE_PASSWORD" in env:
            problems.append(f"{name}: the AUTH string is an environment value, not a file from Secret {SECRET}")
        mounts = {m["name"]: m["mountPath"] for m in container.get("volumeMounts", [])}
        secret_volumes = {v["name"] for v in pod.get("volumes", []) if v.get("secret", {}).get("secretName") == SECRET}
        for setting in ("FRAUD_FEATURE_STORE_PASSWORD_FILE", "FRAUD_FEATURE_STORE_CA_FILE"):
            path = env.get(setting, {}).get("value", "")
            if not any(v in secret_volumes and path.startswith(mount + "/") for v, mount in mounts.items()):
                problems.append(f"{name}: {setting} {path!r} is not in a mounted volume of Secret {SECRET}")
        port = int(url.rsplit(":", 1)[-1].split("/")[0]) if url.count(":") >= 2 else None
        mine = [p for p in policies if _selects(p, labels)]
        if not mine:
            problems.append(f"{name}: no egress NetworkPolicy selects its pods")
        elif not any(
            any("ipBlock" in peer for peer in rule.get("to", [])) and {"protocol": "TCP", "port": port} in rule["ports"]
            for policy in mine
            for rule in policy["spec"]["egress"]
        ):
            problems.append(f"{name}: its egress policy does not allow the store's port {port}")
    return problems


def test_the_overlay_validates_and_passes_the_audit(rendered: list[dict[str, Any]]) -> None:
    assert validate_core(rendered) == []
    assert security_problems(rendered) == []


def test_both_clients_reach_the_store_with_tls_and_a_secret_and_only_the_scorer_writes(
    rendered: list[dict[str, Any]],
) -> None:
    assert feature_store_problems(rendered) == []
    pods = _pods(rendered)
    writes = {
        name: {e["name"]: e.get("value") for e in container["env"]}.get("FRAUD_FEATURE_STORE_WRITE", "true")
        for name, (_, container, _) in pods.items()
    }
    assert writes == {"predictor": "false", "scorer": "true"}


BREAKS = {
    "plain-redis": ("predictor-feature-store.yaml", "rediss://10.0.0.3", "redis://10.0.0.3", "not TLS"),
    "inline-password": (
        "scorer-feature-store.yaml",
        "{name: FRAUD_FEATURE_STORE_PASSWORD_FILE, value: /etc/fraud/feature-store/auth-string}",
        '{name: FRAUD_FEATURE_STORE_PASSWORD, value: "hunter2"}',
        "is an environment value",
    ),
    "unmounted-ca": (
        "predictor-feature-store.yaml",
        "value: /etc/fraud/feature-store/server-ca.pem",
        "value: /etc/ssl/server-ca.pem",
        "FRAUD_FEATURE_STORE_CA_FILE '/etc/ssl/server-ca.pem' is not in a mounted volume",
    ),
    "wrong-port": ("networkpolicy.yaml", "port: 6378}", "port: 6379}", "does not allow the store's port"),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_the_check_fails_on_a_broken_copy(tmp_path: Path, name: str) -> None:
    file, before, after, expected = BREAKS[name]
    rendered = broken_overlay(tmp_path, "transactions", f"overlays/transactions/{file}", before, after, count=-1)
    problems = feature_store_problems(rendered)
    assert any(expected in p for p in problems), problems
