"""hadolint passes on every Dockerfile in the repository, and fails on a bad one."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from .checks import REPO, dockerfiles, hadolint


def test_the_components_dockerfile_is_found() -> None:
    assert REPO / "components" / "Dockerfile" in dockerfiles()


@pytest.mark.parametrize("dockerfile", dockerfiles(), ids=lambda p: str(p.relative_to(REPO)))
def test_hadolint_passes(dockerfile: Path) -> None:
    result = hadolint(dockerfile)
    assert result.returncode == 0, result.stdout + result.stderr


def test_components_image_runs_as_non_root_from_a_pinned_base() -> None:
    text = (REPO / "components" / "Dockerfile").read_text()
    assert re.search(r"^USER 10001", text, re.MULTILINE)
    assert ":latest" not in text
    assert text.count("\nFROM ") >= 2, "multi-stage build expected"
    assert "--constraint requirements.lock" in text


MUTATIONS = {
    # a moving base image instead of the pinned PYTHON_IMAGE argument
    "latest-base": ("components/Dockerfile", "FROM ${PYTHON_IMAGE} AS build", "FROM python:latest AS build", "DL3007"),
    # a COPY from a build stage that does not exist
    "unknown-stage": ("serving/Dockerfile", "COPY --from=build /opt/venv", "COPY --from=builder /opt/venv", "DL3022"),
    # cd in a RUN step instead of WORKDIR
    "cd-not-workdir": ("serving/Dockerfile", "WORKDIR /src", "RUN cd /src", "DL3003"),
    # the image ends as root
    "root-user": ("serving/Dockerfile", "USER 10001:10001", "USER root", "DL3002"),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_hadolint_fails_when_a_project_dockerfile_regresses(tmp_path: Path, name: str) -> None:
    file, before, after, rule = MUTATIONS[name]
    text = (REPO / file).read_text()
    assert before in text, f"{file} no longer holds {before!r}: pick another mutation"
    path = tmp_path / "Dockerfile"
    path.write_text(text.replace(before, after, 1))
    result = hadolint(path)
    assert result.returncode != 0
    assert rule in result.stdout, result.stdout


def test_images_and_manifests_agree_on_user_and_port() -> None:
    """The UID each image runs as is the one the manifests enforce, and the served port is the probed one."""
    from .checks import OVERLAYS, kustomize

    def final_user(dockerfile: Path) -> str:
        return [line.split()[1] for line in dockerfile.read_text().splitlines() if line.startswith("USER ")][-1]

    docs = kustomize(OVERLAYS[0])
    isvc = next(d for d in docs if d["kind"] == "InferenceService")
    predictor = isvc["spec"]["predictor"]
    mlflow = next(d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "mlflow")
    mlflow_pod = mlflow["spec"]["template"]["spec"]
    serving = REPO / "serving" / "Dockerfile"
    for dockerfile, pod in [(serving, predictor), (REPO / "components" / "Dockerfile", mlflow_pod)]:
        sc = pod["securityContext"]
        assert final_user(dockerfile) == f"{sc['runAsUser']}:{sc['runAsGroup']}", dockerfile
    container = predictor["containers"][0]
    assert f"EXPOSE {container['ports'][0]['containerPort']}" in serving.read_text()
    assert container["readinessProbe"]["httpGet"]["port"] == container["ports"][0]["containerPort"]
