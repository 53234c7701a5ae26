"""The whole pipeline with every step in the components image (kfp.local DockerRunner on podman's API service).

The same seeded run on this machine's Python and in containers must give the same summary: the same test
AUPRC to 4 decimals and the same promotion. Every task's container must have run as the image's non-root user:
each file a task wrote into the pipeline root (and the MLflow store, and the exported champion) is owned by
that uid, which bind mounts keep as it is on the host.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from tests.conftest import run_fraud
from tests.containers.conftest import COMPONENTS_IMAGE, IMAGE_UID, REPO, require_image

RUN_TIMEOUT = 1500
"""Per run (seconds); the first test's setup holds two runs, hence its own pytest-timeout above the default."""

pytestmark = [pytest.mark.containers, pytest.mark.slow, pytest.mark.timeout(2 * RUN_TIMEOUT + 300)]


def fraud_run(home: Path, *options: str) -> subprocess.CompletedProcess[str]:
    env = {k: v for k, v in os.environ.items() if not k.startswith(("FRAUD_", "MLFLOW_"))}
    env.update({"FRAUD_HOME": str(home), "PYTHONPATH": str(REPO)})
    return run_fraud("run", *options, env=env, timeout=RUN_TIMEOUT)


def test_auprc(text: str) -> str:
    match = re.search(r"^\s*AUPRC\s+(\d\.\d{4})\s+\(primary metric\)", text, flags=re.M)
    assert match, text[-3000:]
    return match.group(1)


test_auprc.__test__ = False  # type: ignore[attr-defined]  (a helper, not a test)


def verdict(text: str) -> str:
    match = re.search(r"\b(NOT PROMOTED|PROMOTED)\b", text)
    assert match, text[-3000:]
    return match.group(1)


@pytest.fixture(scope="module")
def runs(podman_env: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> dict[str, object]:
    require_image(podman_env, COMPONENTS_IMAGE)
    host_home = tmp_path_factory.mktemp("host") / ".fraud"
    container_home = tmp_path_factory.mktemp("container") / ".fraud"
    host = fraud_run(host_home)
    assert host.returncode == 0, host.stdout[-3000:] + host.stderr[-3000:]
    container = fraud_run(container_home, "--runner", "container")
    assert container.returncode == 0, container.stdout[-5000:] + container.stderr[-5000:]
    return {"host": host.stdout, "container": container.stdout, "home": container_home}


def test_same_auprc_and_the_same_promotion(runs: dict[str, object]) -> None:
    host, container = str(runs["host"]), str(runs["container"])
    print(f"test AUPRC: host {test_auprc(host)}, containers {test_auprc(container)}")
    assert test_auprc(container) == test_auprc(host)
    assert verdict(host) == verdict(container) == "PROMOTED"


def run_log(stdout: str) -> str:
    """The run's log file (kfp.local's output and every task's log), named on ``fraud run``'s first line."""
    match = re.search(r"log and report in (\S+)", stdout)
    assert match, stdout[-3000:]
    return (Path(match.group(1)) / "run.log").read_text()


def test_every_task_ran_in_the_components_image(runs: dict[str, object]) -> None:
    output = run_log(str(runs["container"]))
    tasks = re.findall(r"Executing task '([^']+)'", re.sub(r"\x1b\[[0-9;]*m", "", output))
    assert len(tasks) >= 7, output[-3000:]
    images = re.findall(r"Found image '([^']+)'", output)
    assert len(images) == len(tasks), "every task started a container"
    assert set(images) == {f"localhost/{COMPONENTS_IMAGE}"}


def test_every_task_wrote_as_the_images_non_root_user(runs: dict[str, object]) -> None:
    home = Path(str(runs["home"]))
    root = home / "pipeline_root"
    run_dirs = [d for d in root.iterdir() if d.is_dir()]
    assert len(run_dirs) == 1, run_dirs
    task_dirs = [d for d in run_dirs[0].iterdir() if d.is_dir()]
    assert len(task_dirs) >= 7, task_dirs
    for task_dir in task_dirs:
        files = [p for p in task_dir.rglob("*") if p.is_file()]
        assert files, f"{task_dir.name} wrote nothing"
        owners = {p.stat().st_uid for p in files}
        assert owners == {IMAGE_UID}, (task_dir.name, owners)
    # The MLflow store and the exported champion were written from inside the containers too.
    for folder in (home / "mlflow", home / "serving"):
        written = [p for p in folder.rglob("*") if p.is_file()]
        assert written and {p.stat().st_uid for p in written} == {IMAGE_UID}, folder
    assert 0 not in {p.stat().st_uid for p in root.rglob("*")}
