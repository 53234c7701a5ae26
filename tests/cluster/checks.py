"""The cluster checks themselves, as plain functions: render, validate, audit. The tests call them on the real
repository files and on broken copies, so each check is shown to pass and to fail."""

from __future__ import annotations

import re
import shutil
import subprocess
import sys
from collections.abc import Iterable, Iterator
from pathlib import Path
from typing import Any

import kubernetes.client.models as k8s_models
import kubernetes_validate
import yaml
from kserve import models as kserve_models

REPO = Path(__file__).resolve().parents[2]
MANIFESTS = REPO / "manifests"
OVERLAYS = sorted(p.parent for p in (MANIFESTS / "overlays").glob("*/kustomization.yaml"))
WORKFLOWS = REPO / ".github" / "workflows"

# The Kubernetes minor our manifests are validated against (GKE's regular channel at the time of writing).
KUBERNETES_VERSION = "1.33.0"

CORE_GROUPS = ("v1", "apps/v1", "batch/v1", "rbac.authorization.k8s.io/v1", "networking.k8s.io/v1", "policy/v1")
WORKLOAD_KINDS = {"Deployment", "StatefulSet", "DaemonSet", "Job", "Pod", "ReplicaSet"}
SECRET_NAME = re.compile(r"(PASSWORD|PASSWD|SECRET|TOKEN|API_KEY|PRIVATE_KEY|CREDENTIAL)", re.IGNORECASE)
CREDENTIAL_VALUE = re.compile(
    r"(://[^/\s:@]+:[^/\s@]+@)|(-----BEGIN [A-Z ]*PRIVATE KEY-----)|(\"private_key\"\s*:)|(AKIA[0-9A-Z]{16})"
)
# KServe 0.16 renamed RawDeployment -> Standard and Serverless -> Knative (old names are deprecated aliases).
DEPLOYMENT_MODES = {"Standard", "Knative"}
SHA_PIN = re.compile(r"^[^@\s]+@[0-9a-f]{40}$")


class CheckError(AssertionError):
    """A check found problems; the message lists every one."""


def tool(name: str) -> str:
    """Path of a command-line tool: the project venv's copy first (pip-installed binaries), then PATH."""
    local = Path(sys.executable).parent / name
    if local.exists():
        return str(local)
    found = shutil.which(name)
    if found is None:
        raise FileNotFoundError(f"{name} is not installed: install the project's dev dependencies (make install)")
    return found


def kustomize(directory: Path) -> list[dict[str, Any]]:
    """Render a kustomization with kubectl's built-in kustomize and parse every document."""
    proc = subprocess.run(
        [tool("kubectl"), "kustomize", str(directory)], capture_output=True, text=True, timeout=60, check=False
    )
    if proc.returncode != 0:
        raise CheckError(f"kubectl kustomize {directory} failed: {proc.stderr.strip()}")
    return [doc for doc in yaml.safe_load_all(proc.stdout) if doc]


def validate_core(docs: Iterable[dict[str, Any]], version: str = KUBERNETES_VERSION) -> list[str]:
    """Validate the built-in kinds strictly (unknown fields are errors) against the Kubernetes OpenAPI schema."""
    problems: list[str] = []
    for doc in docs:
        if doc.get("apiVersion") not in CORE_GROUPS:
            continue
        try:
            kubernetes_validate.validate(doc, version, strict=True)
        except kubernetes_validate.ValidationError as exc:
            where = ".".join(str(p) for p in exc.path)
            problems.append(f"{_name(doc)}: {where}: {exc.message}")
    return problems


def _name(doc: dict[str, Any]) -> str:
    meta = doc.get("metadata") or {}
    return f"{doc.get('kind')}/{meta.get('namespace', '-')}/{meta.get('name')}"


_PRIMITIVES: dict[str, tuple[type, ...]] = {
    "str": (str,),
    "int": (int,),
    "float": (int, float),
    "bool": (bool,),
    "object": (object,),
    "ResourceQuantity": (str, int, float),
    "datetime": (str,),
    "date": (str,),
}


def _model_class(type_name: str) -> Any:
    cls = getattr(kserve_models, type_name, None) or getattr(k8s_models, type_name, None)
    if cls is None:
        raise CheckError(f"no SDK model named {type_name}")
    return cls


def to_sdk_model(data: Any, type_name: str, path: str = "") -> Any:
    """Build the SDK object (KServe / Kubernetes OpenAPI models) for ``data``, refusing unknown fields and wrong
    types, so a typo in a manifest field is an error and not a silently dropped key."""
    if type_name.startswith("list["):
        if not isinstance(data, list):
            raise CheckError(f"{path}: expected a list, got {type(data).__name__}")
        inner = type_name[5:-1]
        return [to_sdk_model(item, inner, f"{path}[{i}]") for i, item in enumerate(data)]
    if type_name.startswith("dict("):
        if not isinstance(data, dict):
            raise CheckError(f"{path}: expected a mapping, got {type(data).__name__}")
        inner = type_name[5:-1].split(", ", 1)[1]
        return {key: to_sdk_model(value, inner, f"{path}.{key}") for key, value in data.items()}
    if type_name in _PRIMITIVES:
        allowed = _PRIMITIVES[type_name]
        if not isinstance(data, allowed) or (type_name == "int" and isinstance(data, bool)):
            raise CheckError(f"{path}: expected {type_name}, got {data!r}")
        return data
    cls = _model_class(type_name)
    if not isinstance(data, dict):
        raise CheckError(f"{path}: expected an object ({type_name}), got {data!r}")
    by_json_name = {json_name: attr for attr, json_name in cls.attribute_map.items()}
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        if key not in by_json_name:
            raise CheckError(f"{path}.{key}: unknown field for {type_name}")
        attr = by_json_name[key]
        kwargs[attr] = to_sdk_model(value, cls.openapi_types[attr], f"{path}.{key}")
    try:
        return cls(**kwargs)
    except ValueError as exc:  # the generated models' own required-field checks
        raise CheckError(f"{path}: {exc}") from exc


def check_inference_service(doc: dict[str, Any]) -> Any:
    """Parse one InferenceService with KServe's SDK models and check what our predictor needs."""
    isvc = to_sdk_model(doc, "V1beta1InferenceService", "InferenceService")
    if not isinstance(isvc, kserve_models.V1beta1InferenceService):
        raise CheckError("not an InferenceService")
    if doc.get("apiVersion") != "serving.kserve.io/v1beta1":
        raise CheckError(f"apiVersion must be serving.kserve.io/v1beta1, got {doc.get('apiVersion')}")
    predictor = isvc.spec.predictor
    problems: list[str] = []
    mode = (isvc.metadata.annotations or {}).get("serving.kserve.io/deploymentMode")
    if mode not in DEPLOYMENT_MODES:
        problems.append(f"deploymentMode must be one of {sorted(DEPLOYMENT_MODES)}, got {mode!r}")
    if not predictor.containers or len(predictor.containers) != 1:
        problems.append("the predictor must have exactly one (custom) container")
    else:
        container = predictor.containers[0]
        if container.name != "kserve-container":
            problems.append("the custom container must be named kserve-container")
        env = {e.name: e.value for e in container.env or []}
        if not str(env.get("STORAGE_URI", "")).startswith("gs://"):
            problems.append("STORAGE_URI (the promoted model directory) must be a gs:// URI")
        if env.get("FRAUD_MODEL_URI") != "/mnt/models":
            problems.append("FRAUD_MODEL_URI must be the storage-initializer mount /mnt/models")
        if container.readiness_probe is None:
            problems.append("the predictor needs a readiness probe")
    if not predictor.service_account_name:
        problems.append("the predictor needs its Workload Identity service account")
    if predictor.min_replicas is None or predictor.max_replicas is None:
        problems.append("minReplicas and maxReplicas must be set")
    elif predictor.min_replicas > predictor.max_replicas:
        problems.append("minReplicas > maxReplicas")
    if predictor.scale_metric is None or predictor.scale_target is None:
        problems.append("scaleMetric and scaleTarget must be set")
    if problems:
        raise CheckError("; ".join(problems))
    return isvc


def _pod_specs(doc: dict[str, Any]) -> Iterator[tuple[str, dict[str, Any]]]:
    kind = doc.get("kind")
    spec = doc.get("spec") or {}
    if kind == "Pod":
        yield _name(doc), spec
    elif kind in WORKLOAD_KINDS:
        yield _name(doc), ((spec.get("template") or {}).get("spec") or {})
    elif kind == "CronJob":
        job = (spec.get("jobTemplate") or {}).get("spec") or {}
        yield _name(doc), ((job.get("template") or {}).get("spec") or {})
    elif kind == "InferenceService":
        for component in ("predictor", "transformer", "explainer"):
            if component in spec:
                yield f"{_name(doc)}.{component}", spec[component]


def _image_problem(image: str) -> str | None:
    if "@sha256:" in image:
        return None
    last = image.rsplit("/", 1)[-1]
    if ":" not in last:
        return f"image {image!r} has no tag (kustomize `images:` must rewrite the placeholder)"
    if last.endswith(":latest"):
        return f"image {image!r} uses :latest"
    if "/" not in image:
        return f"image {image!r} names no registry (placeholder not rewritten?)"
    return None


def security_problems(docs: Iterable[dict[str, Any]]) -> list[str]:
    """Every problem found in rendered manifests: root, missing limits, :latest, privileges, secrets in the repo."""
    problems: list[str] = []
    for doc in docs:
        name = _name(doc)
        if doc.get("kind") == "Secret" and (doc.get("data") or doc.get("stringData")):
            problems.append(f"{name}: a Secret with data is committed (create it out of band, never in the repo)")
        dumped = yaml.safe_dump(doc)
        if CREDENTIAL_VALUE.search(dumped):
            problems.append(f"{name}: contains what looks like a plaintext credential")
        for where, pod in _pod_specs(doc):
            problems.extend(_pod_problems(where, pod))
    return problems


def _pod_problems(where: str, pod: dict[str, Any]) -> list[str]:
    problems: list[str] = []
    pod_sc = pod.get("securityContext") or {}
    for flag in ("hostNetwork", "hostPID", "hostIPC"):
        if pod.get(flag):
            problems.append(f"{where}: {flag} is set")
    for volume in pod.get("volumes") or []:
        if "hostPath" in volume:
            problems.append(f"{where}: hostPath volume {volume.get('name')}")
    if pod_sc.get("runAsUser") == 0:
        problems.append(f"{where}: pod runs as root (runAsUser 0)")
    containers = list(pod.get("containers") or []) + list(pod.get("initContainers") or [])
    if not containers:
        problems.append(f"{where}: no containers")
    for container in containers:
        cname = f"{where}/{container.get('name')}"
        sc = container.get("securityContext") or {}
        run_as_non_root = sc.get("runAsNonRoot", pod_sc.get("runAsNonRoot"))
        run_as_user = sc.get("runAsUser", pod_sc.get("runAsUser"))
        if run_as_non_root is not True:
            problems.append(f"{cname}: runAsNonRoot is not true")
        if run_as_user == 0:
            problems.append(f"{cname}: runs as root (runAsUser 0)")
        if sc.get("privileged"):
            problems.append(f"{cname}: privileged")
        if sc.get("allowPrivilegeEscalation") is not False:
            problems.append(f"{cname}: allowPrivilegeEscalation is not false")
        if sc.get("readOnlyRootFilesystem") is not True:
            problems.append(f"{cname}: readOnlyRootFilesystem is not true")
        if "ALL" not in ((sc.get("capabilities") or {}).get("drop") or []):
            problems.append(f"{cname}: capabilities are not all dropped")
        if (sc.get("capabilities") or {}).get("add"):
            problems.append(f"{cname}: adds capabilities")
        resources = container.get("resources") or {}
        for kind in ("requests", "limits"):
            missing = {"cpu", "memory"} - set(resources.get(kind) or {})
            if missing:
                problems.append(f"{cname}: no {kind} for {', '.join(sorted(missing))}")
        image_problem = _image_problem(str(container.get("image", "")))
        if image_problem:
            problems.append(f"{cname}: {image_problem}")
        for env in container.get("env") or []:
            name, value = str(env.get("name", "")), str(env.get("value", ""))
            # a *_FILE setting names where a mounted Secret's file is, not the secret itself
            names_a_mounted_file = name.upper().endswith("_FILE") and value.startswith("/")
            if SECRET_NAME.search(name) and "value" in env and not names_a_mounted_file:
                problems.append(f"{cname}: env {env['name']} holds a plaintext secret (use valueFrom.secretKeyRef)")
    return problems


def hadolint(dockerfile: Path) -> subprocess.CompletedProcess[str]:
    """Run hadolint on one Dockerfile; warnings and errors fail (exit code non-zero)."""
    return subprocess.run(
        [tool("hadolint"), "--no-color", "--failure-threshold", "warning", str(dockerfile)],
        capture_output=True,
        text=True,
        timeout=60,
        check=False,
    )


def actionlint(*workflows: Path) -> subprocess.CompletedProcess[str]:
    """Run actionlint on workflow files (it also runs shellcheck on `run:` scripts when shellcheck is on PATH)."""
    return subprocess.run(
        [tool("actionlint"), "-no-color", *map(str, workflows)],
        capture_output=True,
        text=True,
        timeout=120,
        check=False,
        cwd=REPO,
    )


def unpinned_actions(workflow: dict[str, Any]) -> list[str]:
    """Every `uses:` of a remote action that is not pinned to a full commit SHA."""
    found: list[str] = []
    for job in (workflow.get("jobs") or {}).values():
        uses = [job["uses"]] if "uses" in job else []
        uses += [step["uses"] for step in job.get("steps") or [] if "uses" in step]
        for ref in uses:
            if ref.startswith(("./", "docker://")):
                continue
            if not SHA_PIN.match(ref):
                found.append(ref)
    return found


def dockerfiles() -> list[Path]:
    """Every Dockerfile in the repository (not in virtualenvs or caches)."""
    skip = {".venv", ".git", "node_modules", ".fraud", ".mypy_cache", ".ruff_cache", ".pytest_cache"}
    return sorted(
        p
        for p in REPO.rglob("*Dockerfile*")
        if p.is_file() and not skip.intersection(p.relative_to(REPO).parts) and p.suffix not in {".md", ".py"}
    )


def broken_overlay(tmp_path: Path, overlay: str, file: str, old: str, new: str, count: int = 1) -> list[dict[str, Any]]:
    """Render ``overlay`` from a copy of the manifests where ``file`` (relative to ``manifests/``) has ``old``
    replaced by ``new`` (``count`` times; -1: every time); fails if ``file`` no longer holds ``old``."""
    copy = tmp_path / "manifests"
    shutil.copytree(MANIFESTS, copy)
    path = copy / file
    text = path.read_text()
    assert old in text, f"{file} no longer holds {old!r}: pick another break"
    path.write_text(text.replace(old, new, count))
    return kustomize(copy / "overlays" / overlay)
