"""The DaskCluster a step creates on GKE, built offline with ``make_cluster_spec``: the components image, the
Workload Identity service account, hardened pods that validate as Kubernetes pods, and RBAC that allows
exactly what the operator's client does."""

from __future__ import annotations

from typing import Any

import pytest

from components.dask_cluster import WORKER_SERVICE_ACCOUNT, cluster_spec

from .checks import MANIFESTS, kustomize, security_problems, validate_core

IMAGE = "europe-docker.pkg.dev/p/fraud/components:abc123"


@pytest.fixture(scope="module")
def spec() -> dict[str, Any]:
    return cluster_spec("fraud-train-1234abcd", workers=3, image=IMAGE)


def _pods(spec: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {"worker": spec["spec"]["worker"]["spec"], "scheduler": spec["spec"]["scheduler"]["spec"]}


def test_the_operator_resource_names_the_cluster_workers_and_image(spec: dict[str, Any]) -> None:
    assert spec["apiVersion"] == "kubernetes.dask.org/v1" and spec["kind"] == "DaskCluster"
    assert spec["metadata"]["name"] == "fraud-train-1234abcd"
    assert spec["spec"]["worker"]["replicas"] == 3
    for pod in _pods(spec).values():
        assert [c["image"] for c in pod["containers"]] == [IMAGE]
        assert pod["serviceAccountName"] == WORKER_SERVICE_ACCOUNT
    args = spec["spec"]["worker"]["spec"]["containers"][0]["args"]
    assert args[args.index("--nthreads") + 1] == "1"


def test_the_pods_validate_and_pass_the_security_checks(spec: dict[str, Any]) -> None:
    docs = [
        {"apiVersion": "v1", "kind": "Pod", "metadata": {"name": f"dask-{role}", "namespace": "kubeflow"}, "spec": pod}
        for role, pod in _pods(spec).items()
    ]
    assert validate_core(docs) == []
    assert security_problems(docs) == []


def test_the_workers_service_account_and_the_runner_s_rbac_are_in_the_manifests() -> None:
    docs = kustomize(MANIFESTS / "overlays" / "gke")
    accounts = {d["metadata"]["name"]: d for d in docs if d["kind"] == "ServiceAccount"}
    worker = accounts[WORKER_SERVICE_ACCOUNT]
    assert worker["metadata"]["namespace"] == "kubeflow"
    assert worker["metadata"]["annotations"]["iam.gke.io/gcp-service-account"].endswith(".iam.gserviceaccount.com")
    role = next(d for d in docs if d["kind"] == "Role" and d["metadata"]["name"] == "fraud-dask-manager")
    dask_rule = next(r for r in role["rules"] if r["apiGroups"] == ["kubernetes.dask.org"])
    assert "daskclusters" in dask_rule["resources"]
    assert {"create", "delete", "get", "watch"} <= set(dask_rule["verbs"])
    binding = next(d for d in docs if d["kind"] == "RoleBinding" and d["metadata"]["name"] == "fraud-dask-manager")
    assert binding["subjects"] == [{"kind": "ServiceAccount", "name": "fraud-pipeline-runner", "namespace": "kubeflow"}]
