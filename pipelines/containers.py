"""Run pipeline steps in the components image: podman's Docker-compatible API and kfp.local's ``DockerRunner``.

``fraud run --runner container`` wraps the run in :func:`container_runner`: it writes a containers.conf
(``runc``, ulimits at or below this machine's), starts ``podman system service`` on a private socket, points
``DOCKER_HOST`` at it, and hands kfp.local a ``DockerRunner`` that starts every task in the image the compiled
component names, as the image's non-root user, with what a KFP v2 backend gives the user container
(:data:`BACKEND_SCRATCH`, see docs/containers.md). The service is stopped when the run ends.

:func:`add_backend_mounts` adds the same scratch volumes to a task through kfp-kubernetes, for backends that do
not mount them themselves.

Standard library only at import (``containers/build.py`` uses it before the venv exists).
"""

from __future__ import annotations

import contextlib
import os
import resource
import shutil
import subprocess
import tempfile
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Any

COMPONENTS_UID = 10001
"""The components image's user (components/Dockerfile ``USER 10001:10001``)."""

BACKEND_SCRATCH = ("/kfp-launcher", "/gcs", "/minio", "/s3", "/.local", "/.cache", "/.config")
"""The empty-dir volumes KFP 2.17's Argo compiler mounts on every user container
(backend/src/v2/compiler/argocompiler/container.go): the launcher's folder, the launcher's artifact staging
roots, and pip's and other tools' folders for a ``HOME=/``."""

SERVICE_TIMEOUT = 60.0


def _pid_max() -> int:
    try:
        return int(Path("/proc/sys/kernel/pid_max").read_text())
    except (OSError, ValueError):
        return resource.RLIM_INFINITY


def ulimits() -> dict[str, int]:
    """This process's soft limits for open files and processes: containers get these, never more.

    The process limit is also capped at the kernel's ``pid_max``: no more processes can exist, and this
    machine's kernel refuses (EPERM) an ``RLIMIT_NPROC`` above it when runc sets up a container.
    """
    nofile = resource.getrlimit(resource.RLIMIT_NOFILE)[0]
    nproc = resource.getrlimit(resource.RLIMIT_NPROC)[0]
    return {"nofile": nofile, "nproc": min(nproc, _pid_max())}


def ulimit_args() -> list[str]:
    """``--ulimit`` arguments for ``podman build``/``podman run``."""
    args = []
    for name, value in ulimits().items():
        args += ["--ulimit", f"{name}={value}:{value}"]
    return args


def containers_conf_text() -> str:
    limits = ", ".join(f'"{name}={value}:{value}"' for name, value in ulimits().items())
    return (
        "# Written by pipelines/containers.py for CONTAINERS_CONF; the machine's own files stay untouched.\n"
        "[containers]\n"
        f"default_ulimits = [{limits}]\n\n"
        "[engine]\n"
        'runtime = "runc"\n'
    )


def write_containers_conf(directory: Path) -> Path:
    """Write containers.conf for this machine's limits into ``directory``; return its path."""
    directory.mkdir(parents=True, exist_ok=True)
    path = directory / "containers.conf"
    text = containers_conf_text()
    if not path.exists() or path.read_text() != text:
        path.write_text(text)
    return path.resolve()


class PodmanService:
    """``podman system service`` on a private unix socket, for Docker API clients (docker-py, kfp.local)."""

    def __init__(self, state_dir: Path) -> None:
        self.state_dir = state_dir
        self.socket = Path(tempfile.mkdtemp(prefix="fraud-podman-")) / "podman.sock"
        self.url = f"unix://{self.socket}"
        self.conf = write_containers_conf(state_dir)
        self.process: subprocess.Popen[bytes] | None = None
        self.log_path = state_dir / "podman-service.log"

    def env(self) -> dict[str, str]:
        return {**os.environ, "CONTAINERS_CONF": str(self.conf)}

    def start(self) -> None:
        if shutil.which("podman") is None:
            raise RuntimeError("podman is not installed (make sysdeps installs it)")
        with self.log_path.open("wb") as log:
            self.process = subprocess.Popen(
                ["podman", "system", "service", "--time=0", self.url],
                env=self.env(),
                stdout=log,
                stderr=subprocess.STDOUT,
            )
        deadline = time.monotonic() + SERVICE_TIMEOUT
        while time.monotonic() < deadline:
            if self.process.poll() is not None:
                raise RuntimeError(f"podman system service exited: {self.log_path.read_text()[-2000:]}")
            if self.socket.exists() and self._ping():
                return
            time.sleep(0.2)
        self.stop()
        raise RuntimeError(f"podman system service did not answer within {SERVICE_TIMEOUT:.0f}s")

    def _ping(self) -> bool:
        import socket

        with socket.socket(socket.AF_UNIX, socket.SOCK_STREAM) as client:
            client.settimeout(2)
            try:
                client.connect(str(self.socket))
                client.sendall(b"GET /_ping HTTP/1.0\r\nHost: d\r\n\r\n")
                return b" 200 " in client.recv(256)
            except OSError:
                return False

    def stop(self) -> None:
        if self.process is not None and self.process.poll() is None:
            self.process.terminate()
            try:
                self.process.wait(timeout=20)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait(timeout=10)
        self.process = None
        shutil.rmtree(self.socket.parent, ignore_errors=True)

    def __enter__(self) -> PodmanService:
        self.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.stop()


def run_args(writable: Sequence[Path], readable: Sequence[Path] = (), uid: int = COMPONENTS_UID) -> dict[str, Any]:
    """``containers.run`` arguments: the backend's scratch volumes, ``writable`` and ``readable`` (read-only) at
    the same paths, the image's non-root user."""
    from docker.types import Mount

    mounts = [Mount(target=str(p), source=str(p), type="bind") for p in writable]
    mounts += [Mount(target=str(p), source=str(p), type="bind", read_only=True) for p in readable]
    return {
        "user": f"{uid}:{uid}",
        "mounts": mounts,
        # emptyDir volumes are world-writable; so are these, and they vanish with the container.
        "tmpfs": {path: "rw,mode=1777" for path in BACKEND_SCRATCH},
        # What the backend's security context sets on the user container.
        "cap_drop": ["ALL"],
        "security_opt": ["no-new-privileges"],
        # Steps read and write the mounted folders only; nothing leaves the machine.
        "network_mode": "none",
    }


def hand_over(paths: Sequence[Path], uid: int = COMPONENTS_UID) -> None:
    """Make ``paths`` (created if missing) writable by ``uid`` inside the container (root only: chown)."""
    for path in paths:
        path.mkdir(parents=True, exist_ok=True)
        if os.geteuid() != 0:
            continue
        for root, dirs, files in os.walk(path):
            os.chown(root, uid, uid)
            for name in dirs + files:
                os.chown(os.path.join(root, name), uid, uid, follow_symlinks=False)


@contextlib.contextmanager
def tolerate_removed_containers() -> Iterator[None]:
    """While the ``with`` block runs, treat a task container that podman removed before kfp.local looked at it as
    kfp.local treats Docker's answer for that case.

    kfp.local runs each task with ``auto_remove`` and, when Docker says the container is gone (404) while it
    streams the logs or waits, takes the task as finished and reads its outputs. Podman's API answers that race
    with a 500 ("no such container") instead, which would fail a task that finished in a fraction of a second
    (the local deploy). A task that really failed still fails: its outputs are missing.
    """
    import docker
    from kfp.local import docker_task_handler

    original = docker_task_handler.run_docker_container

    def run_docker_container(*args: Any, **kwargs: Any) -> int:
        try:
            return int(original(*args, **kwargs))
        except docker.errors.APIError as error:
            if "no such container" not in str(error):
                raise
            return 0

    docker_task_handler.run_docker_container = run_docker_container
    try:
        yield
    finally:
        docker_task_handler.run_docker_container = original


@contextlib.contextmanager
def container_runner(
    pipeline_root: Path, writable: Sequence[Path], state_dir: Path, readable: Sequence[Path] = ()
) -> Iterator[Any]:
    """A kfp.local ``DockerRunner`` against a podman API service that lives as long as the ``with`` block.

    ``pipeline_root`` (kfp.local mounts it itself) and ``writable`` (folders the steps write besides: MLflow store,
    serving root) are handed to the image's user; ``writable`` is mounted at the same paths, ``readable`` (files or
    folders) read-only. Inside the block, :func:`tolerate_removed_containers` holds, so every caller (the run, the
    container tests) meets podman's answer for a quickly removed task container the same way.
    """
    from kfp import local

    root = pipeline_root.resolve()
    paths = [p.resolve() for p in writable if p.resolve() != root]
    hand_over([root, *paths])
    state_dir.mkdir(parents=True, exist_ok=True)
    with PodmanService(state_dir) as service, tolerate_removed_containers():
        previous = os.environ.get("DOCKER_HOST")
        os.environ["DOCKER_HOST"] = service.url
        try:
            yield local.DockerRunner(**run_args(paths, readable))
        finally:
            if previous is None:
                os.environ.pop("DOCKER_HOST", None)
            else:
                os.environ["DOCKER_HOST"] = previous


def writable_paths(parameters: dict[str, Any], pipeline_root: Path, home: Path) -> list[Path]:
    """The local folders a run's steps write besides the pipeline root: the state folder, the serving root and
    the folder of a SQLite MLflow store, when they are local paths."""
    paths = [home.resolve()]
    candidates = [Path(str(parameters.get("serving_root", "")))]
    uri = str(parameters.get("mlflow_tracking_uri", ""))
    if uri.startswith("sqlite:///"):
        candidates.append(Path(uri.removeprefix("sqlite:///")).parent)
    for path in candidates:
        if path.is_absolute() and not any(path.resolve().is_relative_to(p) for p in paths):
            paths.append(path.resolve())
    return paths


def readable_paths(parameters: dict[str, Any]) -> list[Path]:
    """A local data file the run reads (mounted read-only at the same path)."""
    data = Path(str(parameters.get("data_uri", "")))
    return [data.resolve()] if data.is_absolute() and data.exists() else []


@contextlib.contextmanager
def podman_image_names(pipeline: Any) -> Iterator[dict[str, str]]:
    """Name each task's image as podman lists it while the ``with`` block runs: ``localhost/NAME:TAG``.

    kfp.local looks the image up among the engine's tags before it runs a task and pulls it when absent;
    podman lists a locally built ``NAME:TAG`` as ``localhost/NAME:TAG`` (and no registry is reachable here
    to pull from). Same image, fully qualified; the command and arguments stay as compiled. Yields the
    executors whose image was renamed, with the new names.
    """
    executors = pipeline.pipeline_spec.deployment_spec["executors"]
    saved: dict[str, str] = {}
    for name, executor in executors.items():
        image = str(executor["container"]["image"])
        if "/" not in image:
            saved[name] = image
            executor["container"]["image"] = f"localhost/{image}"
    try:
        yield {name: f"localhost/{image}" for name, image in saved.items()}
    finally:
        for name, image in saved.items():
            executors[name]["container"]["image"] = image


def run_in_containers(parameters: dict[str, Any], pipeline_root: Path, home: Path, **watch: Any) -> Any:
    """``run_local`` with every step in the components image (the image the compiled components name);
    ``watch`` is passed on (log file, listener, echo)."""
    from pipelines.local import run_local
    from pipelines.pipeline import fraud_pipeline

    writable = writable_paths(parameters, pipeline_root, home)
    with (
        container_runner(pipeline_root, writable, home / "containers", readable_paths(parameters)) as runner,
        podman_image_names(fraud_pipeline),
    ):
        return run_local(parameters, pipeline_root, runner=runner, **watch)


def add_backend_mounts(task: Any) -> Any:
    """Mount the backend's scratch folders (:data:`BACKEND_SCRATCH`) on ``task`` as empty-dir volumes.

    Only for a backend that does not mount them itself (KFP 2.17's does). Call it on each task in the pipeline
    function, e.g. ``add_backend_mounts(train_family(...))``; returns the task.
    """
    from kfp import kubernetes

    for path in BACKEND_SCRATCH:
        name = "scratch" + path.replace("/", "-").replace(".", "dot-")
        kubernetes.empty_dir_mount(task, volume_name=name, mount_path=path)
    return task
