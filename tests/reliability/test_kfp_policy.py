"""Retry and caching, as the committed compiled pipeline carries them: retried where a second attempt is safe,
cached only where a task is a pure function of its inputs, never cached where it writes outside KFP."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import yaml

from pipelines.pipeline import CACHED, RETRIED

COMPILED = Path(__file__).resolve().parents[2] / "pipelines" / "fraud_pipeline.yaml"


def compiled_tasks() -> dict[str, dict[str, Any]]:
    """Every task of the compiled pipeline (root DAG and sub-DAGs) by its display name."""
    spec = next(yaml.safe_load_all(COMPILED.read_text()))
    dags = [spec["root"]["dag"], *(c["dag"] for c in spec["components"].values() if "dag" in c)]
    return {task["taskInfo"]["name"]: task for dag in dags for task in dag["tasks"].values()}


def test_every_step_has_the_retry_and_caching_it_declares():
    tasks = {name: task for name, task in compiled_tasks().items() if not name.startswith(("condition", "for-loop"))}
    assert set(RETRIED) | set(CACHED) <= set(tasks)
    for name, task in tasks.items():
        assert task["cachingOptions"].get("enableCache", False) is (name in CACHED), name
        policy = task.get("retryPolicy")
        if name in RETRIED:
            assert policy == {
                "maxRetryCount": 2,
                "backoffDuration": "30s",
                "backoffFactor": 2.0,
                "backoffMaxDuration": "300s",
            }, name
        else:
            assert policy is None, name
    # The steps that move the champion or write outside KFP are never answered from a cache.
    for name in ("load", "select", "evaluate-and-promote", "deploy"):
        assert tasks[name]["cachingOptions"].get("enableCache", False) is False
