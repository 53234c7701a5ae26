"""Kustomize overlays render, validate against Kubernetes and KServe schemas, and pass the security audit;
and every one of those checks fails on a broken copy of the manifests."""

from __future__ import annotations

import shutil
from pathlib import Path
from typing import Any

import pytest

from .checks import (
    MANIFESTS,
    OVERLAYS,
    CheckError,
    check_inference_service,
    kustomize,
    security_problems,
    validate_core,
)


def _by_kind(docs: list[dict[str, Any]], kind: str) -> list[dict[str, Any]]:
    return [d for d in docs if d.get("kind") == kind]


# What every overlay renders for the cluster (the streaming overlay builds on gke and renders them too).
CORE_RESOURCES: list[tuple[str, str]] = [
    ("InferenceService", "fraud-champion"),
    ("ServiceAccount", "fraud-pipeline-runner"),
    ("ServiceAccount", "fraud-predictor"),
    ("ServiceAccount", "fraud-dask"),
    ("Role", "fraud-dask-manager"),
    ("RoleBinding", "fraud-dask-manager"),
    ("ServiceAccount", "mlflow"),
    ("Deployment", "mlflow"),
    ("Service", "mlflow"),
    ("PersistentVolumeClaim", "mlflow-backend"),
    ("NetworkPolicy", "mlflow-ingress"),
    ("NetworkPolicy", "fraud-champion-ingress"),
]


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict[str, Any]]]:
    return {overlay.name: kustomize(overlay) for overlay in OVERLAYS}


def test_both_overlays_exist() -> None:
    assert {o.name for o in OVERLAYS} == {
        "gke",
        "loop",
        "serverless",
        "streaming",
        "transactions",
        "transactions-applier",
    }


@pytest.mark.parametrize("overlay", ["gke", "serverless"])
def test_overlay_renders_everything_the_cluster_needs(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    docs = rendered[overlay]
    kinds = {(d["kind"], d["metadata"]["name"]) for d in docs}
    for expected in CORE_RESOURCES:
        assert expected in kinds, f"{overlay} lacks {expected}"
    # The params ConfigMap is local configuration for kustomize, never applied.
    assert not _by_kind(docs, "ConfigMap")


@pytest.mark.parametrize("overlay", ["gke", "serverless"])
def test_core_resources_validate_strictly(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    assert validate_core(rendered[overlay]) == []


@pytest.mark.parametrize("overlay", ["gke", "serverless"])
def test_security_audit_is_clean(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    assert security_problems(rendered[overlay]) == []


@pytest.mark.parametrize("overlay", ["gke", "serverless"])
def test_workload_identity_bindings(rendered: dict[str, list[dict[str, Any]]], overlay: str) -> None:
    accounts = {d["metadata"]["name"]: d for d in _by_kind(rendered[overlay], "ServiceAccount")}
    for name in ("fraud-pipeline-runner", "fraud-predictor", "mlflow"):
        gsa = accounts[name]["metadata"]["annotations"]["iam.gke.io/gcp-service-account"]
        assert gsa.endswith(".iam.gserviceaccount.com"), (name, gsa)
    isvc = _by_kind(rendered[overlay], "InferenceService")[0]
    assert isvc["spec"]["predictor"]["serviceAccountName"] == "fraud-predictor"


def test_the_pipeline_runner_may_deploy_only_inference_services(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["gke"]
    role = next(d for d in _by_kind(docs, "Role") if d["metadata"]["name"] == "fraud-deployer")
    assert role["metadata"]["namespace"] == "fraud"
    assert [(r["apiGroups"], r["resources"]) for r in role["rules"]] == [(["serving.kserve.io"], ["inferenceservices"])]
    assert "delete" not in role["rules"][0]["verbs"]
    binding = next(d for d in _by_kind(docs, "RoleBinding") if d["metadata"]["name"] == "fraud-deployer")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "fraud-pipeline-runner", "namespace": "kubeflow"}]


def test_mlflow_is_reachable_at_the_pipeline_default_uri(rendered: dict[str, list[dict[str, Any]]]) -> None:
    docs = rendered["gke"]
    service = next(d for d in _by_kind(docs, "Service") if d["metadata"]["name"] == "mlflow")
    assert service["metadata"]["namespace"] == "mlflow"
    assert service["spec"]["ports"][0]["port"] == 5000
    deployment = next(d for d in _by_kind(docs, "Deployment") if d["metadata"]["name"] == "mlflow")
    env = {e["name"]: e.get("value") for e in deployment["spec"]["template"]["spec"]["containers"][0]["env"]}
    assert "mlflow.mlflow.svc.cluster.local:5000" in env["MLFLOW_SERVER_ALLOWED_HOSTS"].split(",")
    assert env["MLFLOW_ARTIFACTS_DESTINATION"].startswith("gs://")
    assert env["MLFLOW_BACKEND_STORE_URI"].startswith("sqlite:////var/lib/mlflow/")


def test_gke_overlay_is_standard_mode_with_hpa(rendered: dict[str, list[dict[str, Any]]]) -> None:
    doc = _by_kind(rendered["gke"], "InferenceService")[0]
    isvc = check_inference_service(doc)
    annotations = isvc.metadata.annotations
    assert annotations["serving.kserve.io/deploymentMode"] == "Standard"
    assert annotations["serving.kserve.io/autoscalerClass"] == "hpa"
    predictor = isvc.spec.predictor
    assert (predictor.min_replicas, predictor.max_replicas) == (2, 10)
    assert (predictor.scale_metric, predictor.scale_target) == ("cpu", 70)
    assert predictor.canary_traffic_percent is None


def test_serverless_overlay_scales_to_zero_with_canary(rendered: dict[str, list[dict[str, Any]]]) -> None:
    doc = _by_kind(rendered["serverless"], "InferenceService")[0]
    isvc = check_inference_service(doc)
    assert isvc.metadata.annotations["serving.kserve.io/deploymentMode"] == "Knative"
    predictor = isvc.spec.predictor
    assert predictor.min_replicas == 0
    assert predictor.scale_metric == "concurrency"
    assert predictor.scale_target == 8
    assert 0 < predictor.canary_traffic_percent < 100


def test_images_are_rewritten_and_never_latest(rendered: dict[str, list[dict[str, Any]]]) -> None:
    for docs in rendered.values():
        isvc = _by_kind(docs, "InferenceService")[0]
        image = isvc["spec"]["predictor"]["containers"][0]["image"]
        assert image.endswith("/fraud/serving:0.1.0"), image
        mlflow = next(d for d in _by_kind(docs, "Deployment") if d["metadata"]["name"] == "mlflow")
        assert mlflow["spec"]["template"]["spec"]["containers"][0]["image"].endswith("/fraud/components:0.1.0")


# ---- every check fails on a broken input ---------------------------------------------------------------------


@pytest.fixture()
def broken(tmp_path: Path) -> Path:
    """A private copy of manifests/ that a test may break."""
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    return copy


def _edit(path: Path, old: str, new: str) -> None:
    text = path.read_text()
    assert old in text, f"{old!r} not in {path}"
    path.write_text(text.replace(old, new, 1))


def test_kustomize_fails_on_a_missing_resource(broken: Path) -> None:
    _edit(broken / "base" / "kustomization.yaml", "  - rbac.yaml\n", "  - rbac.yaml\n  - nosuchfile.yaml\n")
    with pytest.raises(CheckError, match=r"nosuchfile\.yaml"):
        kustomize(broken / "overlays" / "gke")


def test_kustomize_fails_on_invalid_yaml(broken: Path) -> None:
    _edit(broken / "base" / "mlflow" / "service.yaml", "  type: ClusterIP\n", "  type: [ClusterIP\n")
    with pytest.raises(CheckError, match="kustomize"):
        kustomize(broken / "overlays" / "serverless")


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        # a typo'd field is rejected by the strict schema
        ("base/mlflow/deployment.yaml", "  replicas: 1\n", "  replica: 1\n", "replica"),
        # a wrong type
        ("base/mlflow/service.yaml", "      port: 5000\n", "      port: five-thousand\n", "five-thousand"),
        ("base/networkpolicy.yaml", 'policyTypes: ["Ingress"]', 'policyTypes: "Ingress"', "policyTypes"),
    ],
)
def test_kubernetes_validate_fails_on_broken_core_resources(
    broken: Path, file: str, old: str, new: str, expected: str
) -> None:
    _edit(broken / file, old, new)
    problems = validate_core(kustomize(broken / "overlays" / "gke"))
    assert problems and any(expected in p for p in problems), problems


_AUTOSCALING = "overlays/gke/inferenceservice-autoscaling.yaml"
_ISVC = "base/inferenceservice.yaml"


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        # the autoscaling spec
        (_AUTOSCALING, "    minReplicas: 2\n", "    minReplica: 2\n", "minReplica: unknown field"),
        (_AUTOSCALING, "    scaleTarget: 70\n", "    scaleTarget: seventy\n", "expected int"),
        (_AUTOSCALING, "    minReplicas: 2\n", "    minReplicas: 20\n", "minReplicas > maxReplicas"),
        (_AUTOSCALING, "    scaleMetric: cpu\n", "", "scaleMetric and scaleTarget must be set"),
        (_AUTOSCALING, "deploymentMode: Standard", "deploymentMode: RawDeployment", "deploymentMode must be one of"),
        # the container (params.env's MODEL_URI is what kustomize writes into STORAGE_URI)
        ("base/params.env", "MODEL_URI=gs://", "MODEL_URI=/local/", "STORAGE_URI"),
        (_ISVC, "        readinessProbe:\n", "        startupProbe:\n", "readiness probe"),
        (
            _ISVC,
            "        imagePullPolicy: IfNotPresent\n",
            "        imagePullPolicy: IfNotPresent\n        tty: yes\n",
            "tty",
        ),
        (_ISVC, "        ports:\n", "        portz:\n", "portz: unknown field"),
    ],
)
def test_inference_service_check_fails_on_a_broken_spec(
    broken: Path, file: str, old: str, new: str, expected: str
) -> None:
    _edit(broken / file, old, new)
    isvc = _by_kind(kustomize(broken / "overlays" / "gke"), "InferenceService")[0]
    with pytest.raises(CheckError, match=expected):
        check_inference_service(isvc)


@pytest.mark.parametrize(
    ("file", "old", "new", "expected"),
    [
        ("overlays/gke/kustomization.yaml", "    newTag: 0.1.0\n", "    newTag: latest\n", "uses :latest"),
        ("base/inferenceservice.yaml", "      runAsUser: 10001\n", "      runAsUser: 0\n", "runs as root"),
        (
            "base/mlflow/deployment.yaml",
            "            readOnlyRootFilesystem: true\n",
            "            readOnlyRootFilesystem: false\n",
            "readOnlyRootFilesystem",
        ),
        (
            "base/mlflow/deployment.yaml",
            '              drop: ["ALL"]\n',
            '              drop: ["NET_RAW"]\n',
            "dropped",
        ),
        (
            "base/mlflow/deployment.yaml",
            '              cpu: "1"\n              memory: 2Gi\n',
            '              cpu: "1"\n',
            "no limits for memory",
        ),
        (
            "base/mlflow/deployment.yaml",
            "              value: sqlite:////var/lib/mlflow/mlflow.db\n",
            "              value: postgresql://mlflow:hunter2@10.0.0.5/mlflow\n",
            "plaintext credential",
        ),
        (
            "base/mlflow/deployment.yaml",
            "            - name: HOME\n              value: /tmp\n",
            "            - name: HOME\n              value: /tmp\n"
            "            - name: DB_PASSWORD\n              value: x\n",
            "DB_PASSWORD holds a plaintext secret",
        ),
    ],
)
def test_security_audit_fails_on_insecure_manifests(broken: Path, file: str, old: str, new: str, expected: str) -> None:
    _edit(broken / file, old, new)
    problems = security_problems(kustomize(broken / "overlays" / "gke"))
    assert any(expected in p for p in problems), problems


def test_security_audit_fails_on_an_unrewritten_image_placeholder(broken: Path) -> None:
    _edit(broken / "overlays" / "serverless" / "kustomization.yaml", "  - name: fraud-serving\n", "  - name: other\n")
    problems = security_problems(kustomize(broken / "overlays" / "serverless"))
    assert any("'fraud-serving' has no tag" in p for p in problems), problems


def test_security_audit_fails_on_a_committed_secret(broken: Path) -> None:
    (broken / "base" / "secret.yaml").write_text(
        "apiVersion: v1\nkind: Secret\nmetadata:\n  name: db\n  namespace: mlflow\nstringData:\n  uri: x\n"
    )
    _edit(broken / "base" / "kustomization.yaml", "  - rbac.yaml\n", "  - rbac.yaml\n  - secret.yaml\n")
    problems = security_problems(kustomize(broken / "overlays" / "gke"))
    assert any("a Secret with data is committed" in p for p in problems), problems
