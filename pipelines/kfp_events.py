"""When kfp.local starts and ends a task: the one place that reads a kfp log line.

kfp.local 2.17 has no hook for task states: ``task_dispatcher.run_single_task_implementation`` logs
``Executing task 'NAME'`` as a task starts and ``Task 'NAME' finished with status SUCCESS`` (or ``FAILURE``) as it
ends, coloured, and returns the status to its orchestrator only. Those two lines feed the progress display and the
step times, nothing else: why a step failed comes from the step's own record (:mod:`components.outcome`).
``tests/test_kfp_events.py`` runs a tiny pipeline with kfp.local and reads its real output here, so a change of
either line in a new kfp fails that test rather than the display.
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from typing import Literal

_ANSI = re.compile(r"\x1b\[[0-9;]*m")
_TIME = r"^\d\d:\d\d:\d\d\.\d+ - "
"""kfp.local's time stamp (``21:51:34.754``), at the start of the line (a step's own output is streamed indented)."""
_STARTED = re.compile(_TIME + r"INFO - Executing task '([^']+)'$")
_FINISHED = re.compile(_TIME + r"(?:INFO|ERROR) - Task '([^']+)' finished with status (SUCCESS|FAILURE)$")


@dataclass(frozen=True)
class TaskEvent:
    """A kfp.local task started, succeeded or failed."""

    task: str
    state: Literal["started", "succeeded", "failed"]


def plain(line: str) -> str:
    """``line`` without its colour codes and trailing whitespace."""
    return _ANSI.sub("", line).rstrip()


def task_event(line: str) -> TaskEvent | None:
    """The task state a line of kfp.local's own log announces (colours allowed), or None."""
    text = plain(line)
    if started := _STARTED.match(text):
        return TaskEvent(started.group(1), "started")
    if finished := _FINISHED.match(text):
        return TaskEvent(finished.group(1), "succeeded" if finished.group(2) == "SUCCESS" else "failed")
    return None


@dataclass
class TaskTimes:
    """One task's starts and ends as these events tell them (a fanned-out task starts once per item): what the
    progress display draws and the summary's step times list. Times are ``time.perf_counter()`` readings."""

    name: str
    expected: int = 1
    """How many times the task will run (its fan-out size)."""
    started: int = 0
    finished: int = 0
    failed: int = 0
    first_start: float = 0.0
    last_finish: float = 0.0
    busy_seconds: float = 0.0
    """Sum of the finished runs' own durations."""
    _open: list[float] = field(default_factory=list, repr=False)

    def start(self, now: float) -> None:
        """One run of the task started at ``now``."""
        if not self.started:
            self.first_start = now
        self.started += 1
        self._open.append(now)

    def finish(self, now: float, ok: bool) -> None:
        """The earliest open run ended at ``now`` (``ok`` False: it failed)."""
        self.finished += 1
        self.failed += not ok
        self.last_finish = now
        if self._open:
            self.busy_seconds += now - self._open.pop(0)

    @property
    def running(self) -> bool:
        """Some run started and has not ended."""
        return bool(self._open)

    @property
    def done(self) -> bool:
        """Every expected run (and every started one) ended."""
        return self.finished >= max(self.expected, self.started) and self.finished > 0

    @property
    def state(self) -> str:
        """``failed`` once any run failed, else ``done`` or ``running``."""
        if self.failed:
            return "failed"
        return "done" if self.done else "running"

    def elapsed(self, now: float) -> float:
        """From the first start to the last end, or to ``now`` while the task still runs."""
        return (self.last_finish if self.done or self.failed else now) - self.first_start

    @property
    def wall_seconds(self) -> float:
        """From the first run's start to the last run's end."""
        return self.last_finish - self.first_start
