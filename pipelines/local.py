"""Run the pipeline on this machine with ``kfp.local`` (each task a subprocess of this Python).

Everything kfp.local prints (its executor dumps, warnings and each task's streamed log) goes to one log file per
run; a :class:`TaskListener` hears when each task starts and ends (``pipelines.progress`` draws that), and with
``echo`` the raw stream is also passed through (``fraud run --verbose``). How each step ended, and why it failed,
is read from the steps' own records (:mod:`components.outcome`) in the run's folder, never from the log.
"""

from __future__ import annotations

import sys
import threading
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Protocol, TextIO

from components.outcome import StepOutcome, read_outcomes
from pipelines.kfp_events import TaskTimes, plain, task_event
from pipelines.pipeline import fraud_pipeline


class TaskListener(Protocol):
    """Told when a task starts and when it ends (``ok`` False: it failed)."""

    def started(self, task: str) -> None:
        """A task named ``task`` started (a fanned-out step starts once per item)."""

    def finished(self, task: str, ok: bool) -> None:
        """A task named ``task`` ended."""


class _Capture:
    """Stands in for stdout and stderr during a run: every line goes to the log file (colours removed), and task
    starts and ends (:mod:`pipelines.kfp_events`) are timed and told to the listener."""

    def __init__(self, log: TextIO, listener: TaskListener | None, echo: TextIO | None) -> None:
        self.log = log
        self.listener = listener
        self.echo = echo
        self.steps: dict[str, TaskTimes] = {}
        self.failed: list[str] = []
        self._partial = ""
        self._lock = threading.Lock()
        """A ``ParallelFor`` runs tasks on threads that all print here: one writer at a time keeps every line whole
        (unlocked, the shared partial line drops text and the log file's encoder interleaves bytes)."""

    def _line(self, line: str) -> None:
        now = time.perf_counter()
        self.log.write(plain(line) + "\n")
        event = task_event(line)
        if event is None:
            return
        name = event.task
        if event.state == "started":
            self.steps.setdefault(name, TaskTimes(name)).start(now)
            if self.listener:
                self.listener.started(name)
        elif name in self.steps and self.steps[name].running:
            self.steps[name].finish(now, event.state == "succeeded")
            if event.state == "failed":
                self.failed.append(name)
            if self.listener:
                self.listener.finished(name, event.state == "succeeded")

    def write(self, text: str) -> int:
        with self._lock:
            if self.echo is not None:
                self.echo.write(text)
            self._partial += text
            *lines, self._partial = self._partial.split("\n")
            for line in lines:
                self._line(line)
        return len(text)

    def flush(self) -> None:
        with self._lock:
            self.log.flush()
            if self.echo is not None:
                self.echo.flush()

    def isatty(self) -> bool:
        return False

    def __getattr__(self, name: str) -> Any:
        return getattr(self.log, name)


@contextmanager
def _captured(capture: _Capture) -> Iterator[None]:
    """Route stdout, stderr and the root logger to ``capture``; put all three (and ``print``) back afterwards.

    kfp.local swaps the root logger's handlers, its level and ``builtins.print`` per task, and a ``ParallelFor``
    runs tasks on threads, so its own restores race: without this, later lines can escape the log, stay indented,
    or (a level restored to WARNING while a task still runs) be dropped. Lines logged meanwhile reach this handler,
    in kfp.local's own format.
    """
    import builtins
    import logging

    root = logging.getLogger()
    saved = sys.stdout, sys.stderr, builtins.print, root.handlers[:], root.level
    handler = logging.StreamHandler(capture)
    handler.setFormatter(logging.Formatter("%(asctime)s.%(msecs)03d - %(levelname)s - %(message)s", "%H:%M:%S"))
    root.handlers = [handler]
    root.setLevel(logging.INFO)
    sys.stdout = sys.stderr = capture
    try:
        yield
    finally:
        sys.stdout, sys.stderr, builtins.print, root.handlers, level = saved
        root.setLevel(level)
        if capture._partial:
            capture._line(capture._partial)
            capture._partial = ""
        capture.flush()


@dataclass
class LocalRun:
    """The outcome of a local run: outputs on success; the steps' records either way."""

    succeeded: bool
    seconds: float
    outputs: dict[str, Any] = field(default_factory=dict)
    exception: str = ""
    """kfp.local's own message when the run failed (names the failed task only)."""
    steps: list[TaskTimes] = field(default_factory=list)
    log_path: Path | None = None
    """The run's log file: kfp.local's output and every task's full log."""
    failed_tasks: list[str] = field(default_factory=list)
    """kfp.local's names of the tasks that failed (``load-data``)."""
    outcomes: list[StepOutcome] = field(default_factory=list)
    """Every step's record (:mod:`components.outcome`), failures first."""

    @property
    def failures(self) -> list[StepOutcome]:
        """The records of the steps that failed."""
        return [outcome for outcome in self.outcomes if not outcome.ok]


def fan_out_sizes(parameters: dict[str, Any]) -> dict[str, int]:
    """How many times each task inside a ``dsl.ParallelFor`` runs with these parameters, by task name (read from
    the pipeline spec: the loop's items are a pipeline parameter or a literal list)."""
    import json

    from google.protobuf.json_format import MessageToDict

    spec = MessageToDict(fraud_pipeline.pipeline_spec)
    components = spec.get("components", {})
    sizes: dict[str, int] = {}

    def walk(tasks: dict[str, Any], inputs: dict[str, str]) -> None:
        for task in tasks.values():
            component = components.get(task.get("componentRef", {}).get("name", ""), {})
            inner = component.get("dag", {}).get("tasks", {})
            if not inner:
                continue
            bound = {
                name: inputs.get(value.get("componentInputParameter", ""), value.get("componentInputParameter", ""))
                for name, value in task.get("inputs", {}).get("parameters", {}).items()
            }
            items = task.get("parameterIterator", {}).get("items", {})
            count = None
            if "raw" in items:
                count = len(json.loads(items["raw"]))
            elif isinstance(parameters.get(bound.get(items.get("inputParameter", ""), "")), list):
                count = len(parameters[bound[items["inputParameter"]]])
            if count is not None:
                for name, child in inner.items():
                    if "dag" not in components.get(child.get("componentRef", {}).get("name", ""), {}):
                        sizes[name] = count
            walk(inner, bound)

    walk(spec.get("root", {}).get("dag", {}).get("tasks", {}), {})
    return sizes


def run_local(
    parameters: dict[str, Any],
    pipeline_root: Path,
    runner: Any = None,
    log_path: Path | None = None,
    listener: TaskListener | None = None,
    echo: TextIO | None = None,
) -> LocalRun:
    """Execute the pipeline with ``runner`` (default ``SubprocessRunner(use_venv=False)``); never raises for a
    failed task. ``pipelines.containers.run_in_containers`` passes a ``DockerRunner``.

    Args:
        log_path: the run's log file (default: ``run.log`` under ``pipeline_root``).
        listener: told when each task starts and ends.
        echo: where the raw stream also goes (``fraud run --verbose``); None keeps it in the log file only.
    """
    from kfp import local

    pipeline_root.mkdir(parents=True, exist_ok=True)
    log_path = log_path or pipeline_root / "run.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    runner = runner or local.SubprocessRunner(use_venv=False)
    local.init(runner=runner, pipeline_root=str(pipeline_root), raise_on_error=True)
    earlier = set(pipeline_root.iterdir())
    started = time.perf_counter()
    with log_path.open("w", encoding="utf-8") as log:
        capture = _Capture(log, listener, echo)
        failure = ""
        result: Any = None
        with _captured(capture):
            try:
                result = fraud_pipeline(**parameters)
            except RuntimeError as error:
                failure = plain(str(error))
    seconds = time.perf_counter() - started
    # kfp.local makes one folder per run under the pipeline root; this run's is the one that was not there before.
    outcomes = [o for run in sorted(set(pipeline_root.iterdir()) - earlier) if run.is_dir() for o in read_outcomes(run)]
    common: dict[str, Any] = {
        "steps": list(capture.steps.values()),
        "log_path": log_path,
        "failed_tasks": capture.failed,
        "outcomes": sorted(outcomes, key=lambda o: o.ok),
    }
    if failure or result is None:
        return LocalRun(False, seconds, exception=failure, **common)
    outputs = dict(result.outputs) if hasattr(result, "outputs") else dict(result)
    return LocalRun(True, seconds, outputs=outputs, **common)
