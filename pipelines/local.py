"""Run the pipeline on this machine with ``kfp.local`` (each task a subprocess of this Python)."""

from __future__ import annotations

import re
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TextIO

from components.runner import ERROR_MARKER
from pipelines.pipeline import fraud_pipeline

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_STARTED = re.compile(r"Executing task '([^']+)'")
_FINISHED = re.compile(r"Task '([^']+)' finished with status")


@dataclass
class StepTime:
    """How long one pipeline step took; a fanned-out step counts its tasks."""

    name: str
    tasks: int = 0
    busy_seconds: float = 0.0
    """Sum of the tasks' own durations."""
    first_start: float = 0.0
    last_finish: float = 0.0

    @property
    def wall_seconds(self) -> float:
        """From the first task's start to the last task's finish."""
        return self.last_finish - self.first_start


class _Tee:
    """Passes writes through; keeps the lines a failing step marked with its reason, and task timings."""

    def __init__(self, stream: TextIO) -> None:
        self.stream = stream
        self.errors: list[str] = []
        self.steps: dict[str, StepTime] = {}
        self._open: dict[str, list[float]] = {}
        self._partial = ""

    def _timing(self, line: str) -> None:
        now = time.perf_counter()
        plain = _ANSI.sub("", line)
        if started := _STARTED.search(plain):
            name = started.group(1)
            self._open.setdefault(name, []).append(now)
            step = self.steps.setdefault(name, StepTime(name, first_start=now))
            step.tasks += 1
        elif (finished := _FINISHED.search(plain)) and self._open.get(finished.group(1)):
            name = finished.group(1)
            step = self.steps[name]
            step.busy_seconds += now - self._open[name].pop(0)
            step.last_finish = now

    def write(self, text: str) -> int:
        self._partial += text
        *lines, self._partial = self._partial.split("\n")
        for line in lines:
            if ERROR_MARKER in line:
                self.errors.append(line.split(ERROR_MARKER, 1)[1].strip())
            self._timing(line)
        return self.stream.write(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


@dataclass
class LocalRun:
    """The outcome of a local run: outputs on success, the failing steps' reasons otherwise."""

    succeeded: bool
    seconds: float
    outputs: dict[str, Any] = field(default_factory=dict)
    errors: list[str] = field(default_factory=list)
    exception: str = ""
    steps: list[StepTime] = field(default_factory=list)


def run_local(parameters: dict[str, Any], pipeline_root: Path, runner: Any = None) -> LocalRun:
    """Execute the pipeline with ``runner`` (default ``SubprocessRunner(use_venv=False)``); never raises for a
    failed task. ``pipelines.containers.run_in_containers`` passes a ``DockerRunner``."""
    from kfp import local

    pipeline_root.mkdir(parents=True, exist_ok=True)
    runner = runner or local.SubprocessRunner(use_venv=False)
    local.init(runner=runner, pipeline_root=str(pipeline_root), raise_on_error=True)
    tee = _Tee(sys.stdout)
    started = time.perf_counter()
    previous, sys.stdout = sys.stdout, tee
    try:
        result = fraud_pipeline(**parameters)
    except RuntimeError as error:
        return LocalRun(
            False,
            time.perf_counter() - started,
            errors=tee.errors,
            exception=str(error),
            steps=list(tee.steps.values()),
        )
    finally:
        sys.stdout = previous
    outputs = dict(result.outputs) if hasattr(result, "outputs") else dict(result)
    return LocalRun(
        True, time.perf_counter() - started, outputs=outputs, errors=tee.errors, steps=list(tee.steps.values())
    )
