"""actionlint passes on our GitHub workflows and fails on broken ones; every action is pinned to a commit SHA."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest
import yaml

from .checks import WORKFLOWS, actionlint, unpinned_actions

WORKFLOW_FILES = sorted(WORKFLOWS.glob("*.yml"))


def test_ci_and_cd_exist() -> None:
    assert {p.name for p in WORKFLOW_FILES} >= {"ci.yml", "cd.yml"}


def test_actionlint_passes() -> None:
    result = actionlint(*WORKFLOW_FILES)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("workflow", WORKFLOW_FILES, ids=lambda p: p.name)
def test_every_action_is_pinned_to_a_commit(workflow: Path) -> None:
    assert unpinned_actions(yaml.safe_load(workflow.read_text())) == []


def run_lines(workflow: dict[str, Any], job: str) -> list[str]:
    """Every command line the job's steps run, stripped, in order."""
    return [line.strip() for step in workflow["jobs"][job]["steps"] for line in step.get("run", "").splitlines()]


def step_using(workflow: dict[str, Any], job: str, action: str) -> list[dict[str, Any]]:
    """The job's steps that use ``action`` (``owner/name``, any pinned commit)."""
    return [s for s in workflow["jobs"][job]["steps"] if s.get("uses", "").split("@")[0] == action]


def test_ci_runs_the_make_targets_and_checks_the_compiled_pipeline() -> None:
    ci = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    lines = run_lines(ci, "check")
    for command in (
        "make install",
        "make lint",
        "make typecheck",
        "make compile",
        "git diff --exit-code -- pipelines/",
    ):
        assert command in lines, command
    assert any(line.startswith("make test") for line in lines)
    assert lines.index("make compile") < lines.index("git diff --exit-code -- pipelines/")
    (cache,) = step_using(ci, "check", "actions/cache")
    assert "hashFiles('requirements.lock'" in cache["with"]["key"]


def test_ci_reports_a_reduced_pipeline_run_on_every_pull_request() -> None:
    import shlex

    from cli.main import build_parser
    from fraud_detection.config import defaults

    ci = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    assert "pull_request" in ci[True]  # YAML reads the key `on` as True
    steps = ci["jobs"]["pipeline-report"]["steps"]
    (run_step,) = [s for s in steps if "fraud run" in s.get("run", "")]
    argv = shlex.split(run_step["run"].replace("\\\n", " "))
    assert argv[0] == ".venv/bin/fraud"
    args = build_parser().parse_args(argv[1:])  # every option is a real one
    assert args.summary_to == "$GITHUB_STEP_SUMMARY"  # the summary with its gate table goes to the job summary
    assert args.synthetic_rows < defaults()["synthetic_rows"], "a reduced data set"
    assert run_step["env"]["FRAUD_HOME"] == ".fraud"
    (upload,) = step_using(ci, "pipeline-report", "actions/upload-artifact")
    assert upload["with"]["path"] == ".fraud/runs/" and upload.get("if") == "always()"
    assert steps.index(run_step) < steps.index(upload)
    assert "make install" in run_lines(ci, "pipeline-report")


def test_cd_uses_workload_identity_and_commit_tags() -> None:
    cd = yaml.safe_load((WORKFLOWS / "cd.yml").read_text())
    assert cd["jobs"]["pipeline"]["needs"] == "images"
    for job in ("images", "pipeline"):
        auths = step_using(cd, job, "google-github-actions/auth")
        assert auths, job
        for auth in auths:
            assert "workload_identity_provider" in auth["with"] and "credentials_json" not in auth["with"], job
    names = run_lines(cd, "images")
    assert 'echo "components=${REGISTRY}/components:${GITHUB_SHA}" >> "$GITHUB_OUTPUT"' in names
    builds = step_using(cd, "images", "docker/build-push-action")
    assert {b["with"]["file"] for b in builds} == {"components/Dockerfile", "serving/Dockerfile"}
    for build in builds:
        assert build["with"]["tags"].startswith("${{ steps.names.outputs."), build["with"]["tags"]
    assert step_using(cd, "pipeline", "actions/upload-artifact")


def test_cd_labels_each_image_as_make_images_does() -> None:
    from containers.build import IMAGES, image_labels

    cd = yaml.safe_load((WORKFLOWS / "cd.yml").read_text())
    by_file = {b["with"]["file"]: b["with"] for b in step_using(cd, "images", "docker/build-push-action")}
    for name, dockerfile in IMAGES.items():
        labels = dict(line.split("=", 1) for line in by_file[dockerfile]["labels"].splitlines())
        assert labels == image_labels(name, "${{ steps.names.outputs.version }}"), name


MUTATIONS = {
    # a misspelt key in a step of ci.yml
    "misspelt-key": ("ci.yml", "        run: make lint", "        runn: make lint"),
    # an expression naming a context property that does not exist
    "bad-expression": ("cd.yml", "${{ github.sha }}", "${{ github.nosuchthing }}"),
    # a job that needs a job that does not exist
    "bad-needs": ("cd.yml", "needs: images", "needs: pictures"),
    # broken YAML
    "bad-yaml": ("ci.yml", "jobs:", "jobs: ["),
}


@pytest.mark.parametrize("name", sorted(MUTATIONS))
def test_actionlint_fails_when_a_project_workflow_breaks(tmp_path: Path, name: str) -> None:
    file, before, after = MUTATIONS[name]
    text = (WORKFLOWS / file).read_text()
    assert before in text, f"{file} no longer holds {before!r}: pick another mutation"
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    path = workflows / file
    path.write_text(text.replace(before, after, 1))
    result = actionlint(path)
    assert result.returncode != 0
    assert file in result.stdout, result.stdout


def test_pin_check_fails_on_a_project_workflow_with_a_tag() -> None:
    ci = yaml.safe_load((WORKFLOWS / "ci.yml").read_text())
    (checkout,) = step_using(ci, "check", "actions/checkout")
    checkout["uses"] = "actions/checkout@v4"
    assert unpinned_actions(ci) == ["actions/checkout@v4"]


def test_cd_passes_only_parameters_the_compiled_pipeline_declares() -> None:
    import re

    from ops.submit import read_pipeline

    declared = read_pipeline(WORKFLOWS.parents[1] / "pipelines" / "fraud_pipeline.yaml").parameters
    passed = re.findall(r'--param "?([A-Za-z_][A-Za-z0-9_]*)=', (WORKFLOWS / "cd.yml").read_text())
    assert set(passed) <= set(declared), sorted(set(passed) - set(declared))
