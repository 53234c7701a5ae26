"""The Dask cluster a step with ``engine=dask`` runs on.

* ``dask_scheduler_address`` set: connect to that scheduler (a cluster someone else runs).
* Inside a Kubernetes pod (``KUBERNETES_SERVICE_HOST`` set): create a ``DaskCluster`` through the Dask
  Kubernetes Operator, from :func:`cluster_spec` (the components image, the ``fraud-dask`` service
  account that Workload Identity maps to the pipeline's Google service account, non-root and a read-only
  root filesystem), in the step's own namespace; it is deleted when the step ends.
* Anywhere else: a ``LocalCluster`` of ``dask_workers`` single-threaded processes.

Runs only inside components (imported in a component body), never at import of the package.
"""

from __future__ import annotations

import contextlib
import logging
import os
import uuid
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

from components import COMPONENTS_IMAGE

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

WORKER_SERVICE_ACCOUNT = "fraud-dask"
"""Kubernetes service account of the scheduler and worker pods (``manifests/base/serviceaccounts.yaml``)."""

WORKER_MEMORY = "6Gi"
"""Memory request and limit of each worker pod; the worker spills to its local directory before that."""

WORKER_CPU = "2"

_NAMESPACE_FILE = Path("/var/run/secrets/kubernetes.io/serviceaccount/namespace")
_SCRATCH = "/scratch"


def _harden(pod: dict[str, Any], memory: str, cpu: str) -> None:
    """Service account, non-root, read-only root filesystem with an emptyDir for scratch, resources."""
    pod["serviceAccountName"] = WORKER_SERVICE_ACCOUNT
    pod["automountServiceAccountToken"] = False
    pod["securityContext"] = {"runAsNonRoot": True, "runAsUser": 10001, "seccompProfile": {"type": "RuntimeDefault"}}
    pod["volumes"] = [{"name": "scratch", "emptyDir": {}}]
    for container in pod["containers"]:
        container["imagePullPolicy"] = "Always"
        container["resources"] = {"requests": {"memory": memory, "cpu": cpu}, "limits": {"memory": memory, "cpu": cpu}}
        container["env"] = [{"name": "DASK_TEMPORARY_DIRECTORY", "value": _SCRATCH}]
        container["volumeMounts"] = [{"name": "scratch", "mountPath": _SCRATCH}]
        container["securityContext"] = {
            "allowPrivilegeEscalation": False,
            "readOnlyRootFilesystem": True,
            "capabilities": {"drop": ["ALL"]},
        }


def cluster_spec(name: str, workers: int, image: str = COMPONENTS_IMAGE) -> dict[str, Any]:
    """The ``DaskCluster`` resource a step creates: ``make_cluster_spec`` with the components image, then
    the pod settings every pod of this project has.

    Workers run one thread each (``--nthreads 1``) with Dask's memory limit at the pod's, so they spill
    to the scratch volume before the kernel kills them.
    """
    from dask_kubernetes.operator import make_cluster_spec

    spec: dict[str, Any] = make_cluster_spec(name=name, image=image, n_workers=workers, idle_timeout=600)
    worker = spec["spec"]["worker"]["spec"]
    scheduler = spec["spec"]["scheduler"]["spec"]
    _harden(worker, WORKER_MEMORY, WORKER_CPU)
    _harden(scheduler, "1Gi", "500m")
    worker["containers"][0]["args"] += ["--nthreads", "1", "--memory-limit", "auto", "--local-directory", _SCRATCH]
    return spec


def own_image(namespace: str | None) -> str:
    """The image of this pod's ``main`` container (the components image the run was compiled with), read
    from the Kubernetes API; the placeholder when the pod cannot be read."""
    import kr8s

    try:
        pod = kr8s.objects.Pod.get(os.environ["HOSTNAME"], namespace=namespace)
        containers = pod.spec["containers"]
        main = next((c for c in containers if c["name"] == "main"), containers[0])
        return str(main["image"])
    except (KeyError, kr8s.NotFoundError, kr8s.ServerError) as error:
        log.warning("cannot read this pod's image (%s); workers use %s", error, COMPONENTS_IMAGE)
        return COMPONENTS_IMAGE


def in_kubernetes() -> bool:
    """True inside a Kubernetes pod."""
    return bool(os.environ.get("KUBERNETES_SERVICE_HOST"))


@contextlib.contextmanager
def dask_client(scheduler_address: str, workers: int, step: str) -> Iterator[Client]:
    """A client on the cluster this step runs on (see the module doc), closed (and a created cluster
    deleted) on exit."""
    from fraud_detection.engines import dask_cluster

    if scheduler_address:
        with dask_cluster.connect(scheduler_address) as client:
            yield client
    elif in_kubernetes():
        from dask_kubernetes.operator import KubeCluster
        from distributed import Client

        name = f"fraud-{step}-{uuid.uuid4().hex[:8]}"
        namespace = _NAMESPACE_FILE.read_text().strip() if _NAMESPACE_FILE.exists() else None
        spec = cluster_spec(name, workers, own_image(namespace))
        log.info("creating DaskCluster %s (%d workers) in namespace %s", name, workers, namespace)
        with KubeCluster(custom_cluster_spec=spec, namespace=namespace, shutdown_on_close=True) as cluster:
            cluster.wait_for_workers(workers)
            with Client(cluster) as client:
                yield client
    else:
        with dask_cluster.local_client(workers) as client:
            yield client


def window_location(artifact: Any, local: Path, remote: bool) -> str:
    """Where Dask workers read or write a window artifact: its ``gs://`` URI when the workers run in other
    pods (they cannot see this pod's files), else the local path."""
    uri = str(getattr(artifact, "uri", ""))
    return uri if remote and uri.startswith("gs://") else str(local)
