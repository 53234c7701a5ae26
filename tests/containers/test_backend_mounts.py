"""What a KFP 2.17 backend gives a step's container, mirrored by the local container run (docs/containers.md).

A step in the components image, started by kfp.local's DockerRunner exactly as ``fraud run --runner container``
starts every step, writes into each of the backend's scratch folders and its home, as the image's user.
"""

# No `from __future__ import annotations`: KFP reads the components' annotations as types.
import json
from pathlib import Path
from typing import Any

import pytest
import yaml
from kfp import compiler, dsl, local

from pipelines.containers import BACKEND_SCRATCH, add_backend_mounts, container_runner
from tests.containers.conftest import COMPONENTS_IMAGE, IMAGE_UID, require_image

pytestmark = [pytest.mark.containers, pytest.mark.slow]


@dsl.component(base_image=f"localhost/{COMPONENTS_IMAGE}", install_kfp_package=False)
def probe(paths: list) -> str:
    import json
    import os
    import stat

    written = {}
    for path in [*paths, os.path.expanduser("~")]:
        with open(os.path.join(path, "probe"), "w") as handle:
            handle.write("x")
        written[path] = stat.filemode(os.stat(path).st_mode)
    return json.dumps({"uid": os.getuid(), "gid": os.getgid(), "written": written, "home": os.path.expanduser("~")})


def test_a_step_writes_the_backends_scratch_folders_as_the_images_user(
    podman_env: dict[str, str], tmp_path: Path
) -> None:
    require_image(podman_env, COMPONENTS_IMAGE)
    root = tmp_path / "pipeline_root"
    with container_runner(root, [], tmp_path / "state") as runner:
        local.init(runner=runner, pipeline_root=str(root), raise_on_error=True)
        result: Any = json.loads(probe(paths=list(BACKEND_SCRATCH)).output)
    assert result["uid"] == IMAGE_UID and result["gid"] == IMAGE_UID
    assert result["home"] == "/home/app"
    assert set(result["written"]) == {*BACKEND_SCRATCH, "/home/app"}
    for path in BACKEND_SCRATCH:
        assert result["written"][path] == "drwxrwxrwt", path  # an emptyDir: writable by any user


@dsl.component(base_image="python:3.11-slim")
def step() -> str:
    return "ok"


@dsl.pipeline(name="tiny-mounts")
def tiny() -> None:
    add_backend_mounts(step())


def test_add_backend_mounts_puts_an_empty_dir_on_every_scratch_folder(tmp_path: Path) -> None:
    """For a backend that does not mount them itself (KFP 2.17's does): kfp-kubernetes emptyDir mounts."""
    path = tmp_path / "tiny.yaml"
    compiler.Compiler().compile(tiny, str(path))
    documents = list(yaml.safe_load_all(path.read_text()))
    platform = next(d for d in documents if "platforms" in d)
    executor = platform["platforms"]["kubernetes"]["deploymentSpec"]["executors"]["exec-step"]
    mounts = {m["mountPath"]: m for m in executor["emptyDirMounts"]}
    assert set(mounts) == set(BACKEND_SCRATCH)
    assert len({m["volumeName"] for m in mounts.values()}) == len(BACKEND_SCRATCH)
