"""The InferenceService objects the deploy step sends to Kubernetes, as plain dicts (tested exactly).

On a cluster the champion's InferenceService is created once by kustomize (``manifests/``), with its
autoscaling, security and telemetry settings. Deploying a new champion therefore changes only what must
change: the predictor's ``STORAGE_URI`` (the newly exported, versioned model directory) and, in Knative
(serverless) mode, ``canaryTrafficPercent`` so the new revision takes a share of traffic first. Only when no
InferenceService exists yet is a complete one created.
"""

from __future__ import annotations

import copy
import logging
from typing import Any

from fraud_detection.config import DeployKnobs
from ops.resources import INFERENCE_SERVICE, KSERVE_CONTAINER

log = logging.getLogger(__name__)

STORAGE_ENV = "STORAGE_URI"


def _check(storage_uri: str, canary_traffic_percent: int) -> None:
    if not storage_uri:
        raise ValueError("storage_uri is empty: nothing to deploy")
    if not 0 <= canary_traffic_percent <= 100:
        raise ValueError(f"canary_traffic_percent must be within 0..100, got {canary_traffic_percent}")


def new_inference_service(
    name: str,
    namespace: str,
    storage_uri: str,
    image: str,
    service_account: str = "fraud-predictor",
    model_name: str = "fraud-detector",
) -> dict[str, Any]:
    """A complete InferenceService, for a cluster where kustomize has not created one yet.

    It carries what ``manifests/overlays/gke`` renders (Standard mode, HPA on CPU, non-root, read-only root
    filesystem with an emptyDir ``/tmp``, OTLP tracing); a test holds it to the same checks as the manifests.
    """
    _check(storage_uri, 0)
    return {
        "apiVersion": INFERENCE_SERVICE.api_version,
        "kind": INFERENCE_SERVICE.kind,
        "metadata": {
            "name": name,
            "namespace": namespace,
            "labels": {"app.kubernetes.io/name": name, "app.kubernetes.io/part-of": "fraud-detection"},
            "annotations": {"serving.kserve.io/deploymentMode": "Standard"},
        },
        "spec": {
            "predictor": {
                "serviceAccountName": service_account,
                "minReplicas": 2,
                "maxReplicas": 10,
                "scaleMetric": "cpu",
                "scaleTarget": 70,
                "securityContext": {
                    "runAsNonRoot": True,
                    "runAsUser": 10001,
                    "runAsGroup": 10001,
                    "fsGroup": 10001,
                    "seccompProfile": {"type": "RuntimeDefault"},
                },
                "containers": [
                    {
                        "name": KSERVE_CONTAINER,
                        "image": image,
                        "command": ["python", "-m", "serving"],
                        "ports": [{"name": "http1", "containerPort": 8080, "protocol": "TCP"}],
                        "env": [
                            {"name": STORAGE_ENV, "value": storage_uri},
                            {"name": "FRAUD_MODEL_URI", "value": "/mnt/models"},
                            {"name": "FRAUD_MODEL_NAME", "value": model_name},
                            {"name": "FRAUD_PORT", "value": "8080"},
                            {"name": "FRAUD_TRACING_EXPORTER", "value": "otlp"},
                            {"name": "FRAUD_OTLP_ENDPOINT", "value": "https://telemetry.googleapis.com:443"},
                            {"name": "HOME", "value": "/tmp"},
                        ],
                        "resources": {
                            "requests": {"cpu": "500m", "memory": "512Mi"},
                            "limits": {"cpu": "1", "memory": "1Gi"},
                        },
                        "readinessProbe": {
                            "httpGet": {"path": "/v2/health/ready", "port": 8080},
                            "periodSeconds": 5,
                            "timeoutSeconds": 2,
                        },
                        "securityContext": {
                            "allowPrivilegeEscalation": False,
                            "readOnlyRootFilesystem": True,
                            "runAsNonRoot": True,
                            "capabilities": {"drop": ["ALL"]},
                        },
                        "volumeMounts": [{"name": "tmp", "mountPath": "/tmp"}],
                    }
                ],
                "volumes": [{"name": "tmp", "emptyDir": {"sizeLimit": "64Mi"}}],
            }
        },
    }


def updated_inference_service(
    existing: dict[str, Any], storage_uri: str, canary_traffic_percent: int = 0
) -> dict[str, Any]:
    """A copy of a live InferenceService pointing at ``storage_uri``; everything else is kept as it is.

    Args:
        existing: the object as read from the API server (``resourceVersion`` included, so the replace is
            rejected if someone changed it meanwhile).
        canary_traffic_percent: 1..99 sends that share to the new revision (Knative mode); 0 or 100 rolls out
            fully.
    """
    _check(storage_uri, canary_traffic_percent)
    updated = copy.deepcopy(existing)
    predictor = updated.get("spec", {}).get("predictor", {})
    containers = predictor.get("containers") or []
    container = next((c for c in containers if c.get("name") == KSERVE_CONTAINER), None)
    if container is None:
        raise ValueError(
            f"InferenceService {existing.get('metadata', {}).get('name')!r} has no {KSERVE_CONTAINER!r} container"
        )
    env = container.setdefault("env", [])
    for variable in env:
        if variable.get("name") == STORAGE_ENV:
            variable.clear()
            variable.update({"name": STORAGE_ENV, "value": storage_uri})
            break
    else:
        env.insert(0, {"name": STORAGE_ENV, "value": storage_uri})
    if 0 < canary_traffic_percent < 100:
        predictor["canaryTrafficPercent"] = canary_traffic_percent
    else:
        predictor.pop("canaryTrafficPercent", None)
    updated.pop("status", None)
    return updated


def deploy_champion(serving_uri: str, knobs: DeployKnobs, api: Any = None) -> str:
    """Point the champion's InferenceService at ``serving_uri``: create it if missing, else update it in place.

    ``deploy_target == "local"`` does nothing: the export is the deployment (``fraud serve`` reads the local
    champion link). Otherwise the KServe SDK's Kubernetes client (the pod's service account, in cluster) is used,
    or ``api`` when given (a ``CustomObjectsApi``-like object).

    Returns:
        ``serving_uri``, now served.
    """
    if not serving_uri:
        raise ValueError("the promotion decision carries no serving_uri: nothing to deploy")
    if knobs.deploy_target == "local":
        log.info("champion exported to %s; `fraud serve` serves it", serving_uri)
        return serving_uri
    if knobs.deploy_target != "kserve":
        raise ValueError(f"deploy_target must be 'local' or 'kserve', got {knobs.deploy_target!r}")
    from kubernetes.client.rest import ApiException

    if api is None:
        from kserve import KServeClient
        from kubernetes import config

        config.load_incluster_config()
        api = KServeClient().api_instance
    name, namespace = knobs.isvc_name, knobs.isvc_namespace
    try:
        existing = api.get_namespaced_custom_object(*INFERENCE_SERVICE.where(namespace), name)
    except ApiException as error:
        if error.status != 404:
            raise
        body = new_inference_service(name, namespace, serving_uri, knobs.serving_image)
        api.create_namespaced_custom_object(*INFERENCE_SERVICE.where(namespace), body)
        log.info("created InferenceService %s/%s at %s", namespace, name, serving_uri)
        return serving_uri
    body = updated_inference_service(existing, serving_uri, knobs.canary_traffic_percent)
    api.replace_namespaced_custom_object(*INFERENCE_SERVICE.where(namespace), name, body)
    log.info(
        "InferenceService %s/%s now serves %s (canary %d%%)", namespace, name, serving_uri, knobs.canary_traffic_percent
    )
    return serving_uri


def deploy_pointer(serving_root: str, fallback_uri: str, knobs: DeployKnobs, api: Any = None, rounds: int = 5) -> str:
    """Deploy whatever the champion pointer of record names now, until it stops moving; returns what is served.

    Two promotions' deploy steps may run in either order; each deploys the pointer's current model, not its own,
    and reads the pointer again after deploying, so the last deploy to finish serves the last champion. That makes
    the step safe to retry. ``fallback_uri`` (the decision's export) is used only when there is no pointer.
    """
    from fraud_detection import champion

    def current() -> str:
        record = champion.read(serving_root).champion
        return record.uri if record else fallback_uri

    target = current()
    for _ in range(rounds):
        deploy_champion(target, knobs, api)
        latest = current()
        if latest == target:
            return target
        target = latest
    raise RuntimeError(f"the champion under {serving_root} kept moving while it was deployed")
