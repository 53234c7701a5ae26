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
from dataclasses import dataclass
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
