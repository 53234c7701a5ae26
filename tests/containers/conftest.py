"""Fixtures for the container tests: the images `make images` built, run with podman as the cluster runs them.

Every test here is marked ``containers`` (``make test`` leaves them out; ``make test-containers`` runs them).
The images must exist: these tests fail, not skip, when they do not (``make images`` builds them).
"""

from __future__ import annotations

import json
import shutil
import subprocess
import uuid
from collections.abc import Callable, Iterator
from pathlib import Path
from typing import Any

import pytest

from fraud_detection import __version__
from pipelines.containers import ulimit_args, write_containers_conf
from tests.conftest import free_port
from tests.serving.conftest import (
    PolledServer,
    otlp_receiver,  # noqa: F401  (the real OTLP receiver fixture, shared)
)

REPO = Path(__file__).resolve().parents[2]
SERVING_IMAGE = f"fraud-detection-serving:{__version__}"
COMPONENTS_IMAGE = f"fraud-detection-components:{__version__}"
START_TIMEOUT = 90.0
IMAGE_UID = 10001


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    """These tests need the built images: they run only when selected by marker (``-m containers``)."""
    if "containers" in (config.option.markexpr or ""):
        return
    here = Path(__file__).parent
    deselected = [item for item in items if Path(str(item.fspath)).is_relative_to(here)]
    if deselected:
        config.hook.pytest_deselected(items=deselected)
        items[:] = [item for item in items if item not in deselected]


@pytest.fixture(scope="session")
def podman_env(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    """Environment for podman commands: CONTAINERS_CONF at a conf with this machine's limits and runc."""
    import os

    if shutil.which("podman") is None:
        pytest.fail("podman is not installed: make sysdeps installs it")
    conf = write_containers_conf(tmp_path_factory.mktemp("podman"))
    return {**os.environ, "CONTAINERS_CONF": str(conf)}


def podman(
    env: dict[str, str], *args: str, check: bool = True, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["podman", *args], env=env, capture_output=True, text=True, check=check, timeout=timeout)


def require_image(env: dict[str, str], image: str) -> None:
    if podman(env, "image", "exists", image, check=False).returncode != 0:
        pytest.fail(f"image {image} is missing: run `make images` first")


def readable_copy(source: Path, target: Path) -> Path:
    """A copy of a model directory that the image's user can read (pytest's tmp folders are root-only)."""
    shutil.copytree(source, target)
    target.chmod(0o755)
    for path in target.rglob("*"):
        path.chmod(0o755 if path.is_dir() else 0o644)
    return target


class ServingContainer(PolledServer):
    """The serving image as KServe runs it: model at /mnt/models read-only, read-only root, tmpfs /tmp only,
    the image's own user, port 8080 published on 127.0.0.1 only."""

    def __init__(self, env: dict[str, str], model_dir: Path, settings: dict[str, str] | None = None) -> None:
        self.env = env
        self.name = f"fraud-serving-test-{uuid.uuid4().hex[:10]}"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        args = [
            "run", "--detach", "--name", self.name,
            "--read-only", "--read-only-tmpfs=false", "--tmpfs", "/tmp:rw,mode=1777,size=64m",
            "--volume", f"{model_dir}:/mnt/models:ro",
            # slirp4netns: the container reaches this machine's 127.0.0.1 (an OTLP receiver) as 10.0.2.2.
            "--network", "slirp4netns:allow_host_loopback=true",
            "--publish", f"127.0.0.1:{self.port}:8080",
            "--cap-drop", "ALL", "--security-opt", "no-new-privileges",
            *ulimit_args(),
            "--env", "FRAUD_LOAD_RETRY_SECONDS=1",
        ]  # fmt: skip
        for key, value in (settings or {}).items():
            args += ["--env", f"{key}={value}"]
        podman(env, *args, SERVING_IMAGE)

    def inspect(self) -> dict[str, Any]:
        return dict(json.loads(podman(self.env, "container", "inspect", self.name).stdout)[0])

    def running(self) -> bool:
        return bool(self.inspect()["State"]["Running"])

    def logs(self) -> str:
        result = podman(self.env, "logs", self.name, check=False)
        return result.stdout + result.stderr

    def exec(self, *command: str) -> subprocess.CompletedProcess[str]:
        return podman(self.env, "exec", self.name, *command, check=False)

    def exited(self) -> str:
        return "" if self.running() else "container exited"

    def stop(self) -> None:
        podman(self.env, "rm", "--force", "--time", "5", self.name, check=False)


Starter = Callable[..., ServingContainer]


@pytest.fixture
def start_serving(podman_env: dict[str, str]) -> Iterator[Starter]:
    """Start serving containers (stopped and removed at the end of the test)."""
    require_image(podman_env, SERVING_IMAGE)
    started: list[ServingContainer] = []

    def _start(model_dir: Path, **settings: str) -> ServingContainer:
        container = ServingContainer(podman_env, model_dir, settings)
        started.append(container)
        return container

    yield _start
    for container in started:
        container.stop()
