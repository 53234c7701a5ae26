"""The transactions-applier overlay: the stream's writer in a Deployment of its own, scorers that only read and wait
for it. Rendered, validated and audited like the other overlays, with a wiring check shown to fail on broken copies:
the applier and the scorers must share a store, brokers, topics and group, the settings each process reads must be
ones it accepts, and KEDA, the monitors and the egress policy must see the applier."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from streaming.settings import StreamSettings

from .checks import MANIFESTS, broken_overlay, kustomize, security_problems, validate_core
from .test_streaming_manifests import _env
from .test_transactions_manifests import _selects, feature_store_problems

OVERLAY = MANIFESTS / "overlays" / "transactions-applier"
SHARED = ("FRAUD_BOOTSTRAP_SERVERS", "FRAUD_INPUT_TOPIC", "FRAUD_GROUP_ID", "FRAUD_FEATURE_STORE_URL")


@pytest.fixture(scope="module")
def rendered() -> list[dict[str, Any]]:
    return kustomize(OVERLAY)


def _named(docs: list[dict[str, Any]], kind: str, name: str) -> dict[str, Any] | None:
    return next((d for d in docs if d["kind"] == kind and d["metadata"]["name"] == name), None)


def _settings(env: dict[str, str], monkeypatch: pytest.MonkeyPatch) -> StreamSettings | str:
    """The settings a process with ``env`` reads, or why it refuses them."""
    with monkeypatch.context() as patched:
        for name, value in env.items():
            if name.startswith("FRAUD_"):
                patched.setenv(name, value)
        try:
            return StreamSettings()
        except ValueError as error:
            return str(error)


def applier_problems(docs: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch) -> list[str]:
    """What would leave the scorers waiting for a writer that is not there, or writing beside it."""
    applier = _named(docs, "Deployment", "fraud-stream-applier")
    scorer = _named(docs, "Deployment", "fraud-stream-scorer")
    isvc = _named(docs, "InferenceService", "fraud-champion")
    if applier is None or scorer is None or isvc is None:
        return ["the applier, the scorer or the InferenceService is missing"]
    problems = []
    env, scorer_env = (_env(d["spec"]["template"]["spec"]["containers"][0]) for d in (applier, scorer))
    predictor = isvc["spec"]["predictor"]["containers"][0]
    read = {name: _settings(each, monkeypatch) for name, each in (("applier", env), ("scorer", scorer_env))}
    problems += [f"the {name} refuses its settings: {found}" for name, found in read.items() if isinstance(found, str)]
    if isinstance(read["applier"], StreamSettings) and read["applier"].role != "applier":
        problems.append(f"the applier runs as role {read['applier'].role!r}")
    if isinstance(read["scorer"], StreamSettings) and not read["scorer"].wait_for_writer:
        problems.append("the scorer does not wait for the writer")
    if isinstance(read["scorer"], StreamSettings) and read["scorer"].apply_transactions:
        problems.append("the scorer applies transactions beside the applier: two writers")
    container = applier["spec"]["template"]["spec"]["containers"][0]
    if container["command"] != ["python", "-m", "streaming"] or container["image"] != predictor["image"]:
        problems.append("the applier does not run the stream in the predictor's image")
    if env.get("FRAUD_MODEL_URI") != {e["name"]: e.get("value") for e in predictor["env"]}.get("STORAGE_URI"):
        problems.append(f"the applier loads {env.get('FRAUD_MODEL_URI')}, not the champion")
    for setting in SHARED:
        if env.get(setting) != scorer_env.get(setting):
            problems.append(f"{setting}: the applier has {env.get(setting)!r}, the scorer {scorer_env.get(setting)!r}")
    both = [found for found in read.values() if isinstance(found, StreamSettings)]
    if len(both) == 2 and both[0].labels_topic != both[1].labels_topic:
        problems.append("the applier and the scorer name different labels topics")
    scaled = _named(docs, "ScaledObject", "fraud-stream-applier")
    if scaled is None or scaled["spec"]["scaleTargetRef"]["name"] != "fraud-stream-applier":
        problems.append("KEDA does not scale the applier")
    else:
        meta = scaled["spec"]["triggers"][0]["metadata"]
        if meta.get("consumerGroup") != f"{env.get('FRAUD_GROUP_ID')}-applier":
            problems.append(
                f"KEDA watches group {meta.get('consumerGroup')!r}, the applier consumes as <group>-applier"
            )
        if meta.get("topic") != env.get("FRAUD_INPUT_TOPIC"):
            problems.append(f"KEDA watches topic {meta.get('topic')!r}, not the applier's input")
    pods = applier["spec"]["template"]["metadata"]["labels"]
    service = _named(docs, "Service", "fraud-stream-applier-metrics")
    for kind, labels in (("PodMonitoring", pods), ("ServiceMonitor", service["metadata"]["labels"] if service else {})):
        monitor = _named(docs, kind, "fraud-stream-scorer")
        if monitor is None or not _selects({"spec": {"podSelector": monitor["spec"]["selector"]}}, labels):
            problems.append(f"no {kind} scrapes the applier")
    return problems


def test_the_overlay_validates_and_passes_the_audit(rendered: list[dict[str, Any]]) -> None:
    assert validate_core(rendered) == []
    assert security_problems(rendered) == []
    assert feature_store_problems(rendered) == []  # the applier too: TLS, AUTH from the Secret, its egress policy


def test_one_writer_and_scorers_that_wait_for_it(
    rendered: list[dict[str, Any]], monkeypatch: pytest.MonkeyPatch
) -> None:
    assert applier_problems(rendered, monkeypatch) == []


BREAKS = {
    "scorer-applies": (  # the scorer's patch misses it: it applies, beside the applier
        "kustomization.yaml",
        "{kind: Deployment, name: fraud-stream-scorer}",
        "{kind: Deployment, name: other}",
        "two writers",
    ),
    "scorer-contradicts": (
        "kustomization.yaml",
        'FRAUD_APPLY_TRANSACTIONS, value: "false"',
        'FRAUD_APPLY_TRANSACTIONS, value: "true"',
        "the scorer refuses its settings",
    ),
    "scorer-does-not-wait": (
        "kustomization.yaml",
        'FRAUD_WAIT_FOR_WRITER, value: "true"',
        'FRAUD_WAIT_FOR_WRITER, value: "false"',
        "does not wait",
    ),
    "applier-as-scorer": ("applier.yaml", "value: applier", "value: scorer", "runs as role 'scorer'"),
    "keda-group": (
        "applier.yaml",
        "consumerGroup: fraud-scorer-applier",
        "consumerGroup: fraud-scorer",
        "watches group",
    ),
    "other-store": ("applier.yaml", "rediss://10.0.0.3:6378/0", "rediss://10.0.0.3:6378/1", "FRAUD_FEATURE_STORE_URL"),
    "unscraped": (
        "kustomization.yaml",
        "values: [fraud-stream-scorer, fraud-stream-applier]",
        "values: [x]",
        "scrapes",
    ),
}


@pytest.mark.parametrize("name", sorted(BREAKS))
def test_the_check_fails_on_a_broken_copy(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, name: str) -> None:
    file, before, after, expected = BREAKS[name]
    rendered = broken_overlay(tmp_path, "transactions-applier", f"overlays/transactions-applier/{file}", before, after)
    problems = applier_problems(rendered, monkeypatch)
    assert any(expected in p for p in problems), problems


def test_the_applier_without_its_egress_policy_is_caught(tmp_path: Path) -> None:
    rendered = broken_overlay(
        tmp_path,
        "transactions-applier",
        "overlays/transactions-applier/kustomization.yaml",
        "        value: fraud-stream-applier\n",
        "        value: other\n",
    )
    assert "applier: no egress NetworkPolicy selects its pods" in feature_store_problems(rendered)
