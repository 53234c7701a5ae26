"""actionlint passes on our GitHub workflows and fails on broken ones; every action is pinned to a commit SHA."""

from __future__ import annotations

from pathlib import Path

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


def test_ci_runs_the_make_targets() -> None:
    text = (WORKFLOWS / "ci.yml").read_text()
    for command in ("make lint", "make typecheck", "make test", "make compile", "git diff --exit-code"):
        assert command in text
    assert "hashFiles('requirements.lock'" in text


def test_cd_uses_workload_identity_and_commit_tags() -> None:
    cd = yaml.safe_load((WORKFLOWS / "cd.yml").read_text())
    text = (WORKFLOWS / "cd.yml").read_text()
    assert "credentials_json" not in text, "no JSON keys: Workload Identity Federation only"
    assert "workload_identity_provider" in text
    assert cd["jobs"]["pipeline"]["needs"] == "images"
    steps = cd["jobs"]["images"]["steps"]
    names = next(s for s in steps if s.get("id") == "names")["run"]
    assert "${GITHUB_SHA}" in names and "latest" not in text
    assert any("upload-artifact" in s.get("uses", "") for s in cd["jobs"]["pipeline"]["steps"])


BROKEN = {
    # an unknown key in a step
    "bad-key": "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo hi\n        wiht: {}\n",
    # an expression referring to an undefined context property
    "bad-expression": (
        "on: push\njobs:\n  a:\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo ${{ github.nosuchthing }}\n"
    ),
    # a job depending on a job that does not exist
    "bad-needs": "on: push\njobs:\n  a:\n    needs: b\n    runs-on: ubuntu-24.04\n    steps:\n      - run: echo hi\n",
    # invalid YAML
    "bad-yaml": "on: push\njobs:\n  a: [\n",
}


@pytest.mark.parametrize("name", sorted(BROKEN))
def test_actionlint_fails_on_a_broken_workflow(tmp_path: Path, name: str) -> None:
    workflows = tmp_path / ".github" / "workflows"
    workflows.mkdir(parents=True)
    path = workflows / f"{name}.yml"
    path.write_text(BROKEN[name])
    result = actionlint(path)
    assert result.returncode != 0
    assert f"{name}.yml" in result.stdout, result.stdout


def test_pin_check_fails_on_a_tag() -> None:
    workflow = {"jobs": {"a": {"steps": [{"uses": "actions/checkout@v4"}, {"uses": "./local-action"}]}}}
    assert unpinned_actions(workflow) == ["actions/checkout@v4"]


def test_cd_passes_only_parameters_the_compiled_pipeline_declares() -> None:
    import re

    from ops.submit import read_pipeline

    declared = read_pipeline(WORKFLOWS.parents[1] / "pipelines" / "fraud_pipeline.yaml").parameters
    passed = re.findall(r'--param "?([A-Za-z_][A-Za-z0-9_]*)=', (WORKFLOWS / "cd.yml").read_text())
    assert set(passed) <= set(declared), sorted(set(passed) - set(declared))
