"""kfp.local's real output, read by :mod:`pipelines.kfp_events`: a tiny pipeline with a fan-out, one task that
succeeds and one that fails, run with the pinned kfp, gives exactly the start and end of each task.

No ``from __future__ import annotations`` here: KFP reads the real annotation objects."""

from pathlib import Path

import pytest
from kfp import dsl, local

from pipelines.kfp_events import TaskEvent, task_event
from pipelines.local import _Capture, _captured


@dsl.component(base_image="python:3.11-slim")
def greet(name: str) -> str:
    """Succeed."""
    print(f"hello {name}")
    return name


@dsl.component(base_image="python:3.11-slim")
def refuse(name: str) -> str:
    """Fail."""
    raise ValueError(f"no {name}")


@dsl.pipeline(name="events")
def events_pipeline() -> None:
    """Two greetings side by side, then one refusal."""
    with dsl.ParallelFor(["a", "b"]) as name:
        greeted = greet(name=name)
    refuse(name="c").after(greeted)


def test_task_states_are_read_from_kfp_locals_real_output(tmp_path: Path) -> None:
    """Captured as ``fraud run`` captures it (a fan-out's threads swap the root logger's handlers and level at once:
    a finish line logged meanwhile must still arrive)."""
    heard: list[TaskEvent] = []

    class Listener:
        def started(self, task: str) -> None:
            heard.append(TaskEvent(task, "started"))

        def finished(self, task: str, ok: bool) -> None:
            heard.append(TaskEvent(task, "succeeded" if ok else "failed"))

    local.init(runner=local.SubprocessRunner(use_venv=False), pipeline_root=str(tmp_path), raise_on_error=True)
    log_path = tmp_path / "run.log"
    with (
        log_path.open("w", encoding="utf-8") as log,
        _captured(_Capture(log, Listener(), echo=None)),
        pytest.raises(RuntimeError),
    ):
        events_pipeline()
    text = log_path.read_text(encoding="utf-8")
    events = [event for line in text.splitlines() if (event := task_event(line))]
    assert events == heard, text
    assert sorted(e.task for e in events if e.state == "started") == ["greet", "greet", "refuse"], text
    assert events.count(TaskEvent("greet", "succeeded")) == 2, text
    assert events[-1] == TaskEvent("refuse", "failed")
    assert len(events) == 6


def test_a_steps_own_output_is_not_taken_for_a_task_state() -> None:
    assert task_event("12:00:00.000 - INFO - Executing task \x1b[96m'load-data'\x1b[0m") == TaskEvent(
        "load-data", "started"
    )
    assert task_event("    12:00:00.000 - INFO - Executing task 'indented'") is None, "a step's streamed output"
    assert task_event("12:00:00.000 - INFO - Task 'load-data' outputs:") is None
