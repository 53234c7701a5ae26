"""Podman's answer to a task container that ``auto_remove`` took away while kfp.local looked at it."""

import json

import docker
import pytest
import requests
from kfp.local import docker_task_handler

from pipelines.containers import tolerate_removed_containers


def podman_error(status: int, message: str) -> docker.errors.APIError:
    """The error docker-py raises for podman's reply, built from a reply with podman's body."""
    response = requests.Response()
    response.status_code = status
    response.url = "http+docker://localhost/v1.41/containers/72349a9e/json"
    response._content = json.dumps({"cause": "no such container", "message": message}).encode()
    try:
        docker.errors.create_api_error_from_http_exception(requests.HTTPError(response=response))
    except docker.errors.APIError as error:
        return error
    raise AssertionError("docker-py raised nothing")


REMOVED = "container 72349a9e does not exist in database: no such container"


def raising(error: Exception) -> object:
    def run(*args: object, **kwargs: object) -> int:
        raise error

    return run


def test_a_container_removed_mid_inspect_counts_as_finished(monkeypatch: pytest.MonkeyPatch) -> None:
    error = podman_error(500, REMOVED)
    assert not isinstance(error, docker.errors.NotFound)  # what kfp.local's own handling misses
    monkeypatch.setattr(docker_task_handler, "run_docker_container", raising(error))
    with tolerate_removed_containers():
        assert docker_task_handler.run_docker_container(client=None, image="i", command=[], volumes={}) == 0
    with pytest.raises(docker.errors.APIError):  # only inside the block
        docker_task_handler.run_docker_container(client=None, image="i", command=[], volumes={})


def test_any_other_engine_error_still_fails_the_task(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(docker_task_handler, "run_docker_container", raising(podman_error(500, "runc: exec failed")))
    with tolerate_removed_containers(), pytest.raises(docker.errors.APIError, match="exec failed"):
        docker_task_handler.run_docker_container(client=None, image="i", command=[], volumes={})
