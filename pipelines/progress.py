"""What ``fraud run`` shows while the pipeline runs: one live line per task on a terminal, a few plain lines
elsewhere (CI, a pipe). Both are :class:`pipelines.local.TaskListener` s, fed from the run's log stream."""

from __future__ import annotations

import threading
import time
from typing import Any, TextIO

from pipelines.kfp_events import TaskTimes


class _Tasks:
    """Task states in start order; thread-safe (kfp.local runs a fan-out's items on worker threads)."""

    def __init__(self, fan_outs: dict[str, int]) -> None:
        self.fan_outs = fan_outs
        self.tasks: dict[str, TaskTimes] = {}
        self.lock = threading.Lock()

    def _started(self, name: str) -> TaskTimes:
        """Count a start of ``name`` (the caller holds the lock)."""
        task = self.tasks.setdefault(name, TaskTimes(name, self.fan_outs.get(name, 1)))
        task.start(time.perf_counter())
        return task

    def start(self, name: str) -> TaskTimes:
        with self.lock:
            return self._started(name)

    def finish(self, name: str, ok: bool) -> TaskTimes:
        """Count an end of ``name``; one never seen starting counts as started now (the lock is taken once)."""
        with self.lock:
            task = self.tasks.get(name) or self._started(name)
            task.finish(time.perf_counter(), ok)
            return task


class PlainProgress:
    """For output that is not a terminal: each step's time as it ends (a fan-out once, when its last item ends),
    several steps to a line like the summary's step list, so a CI log stays short. A failure gets its own line."""

    WIDTH = 76

    def __init__(self, stream: TextIO, fan_outs: dict[str, int]) -> None:
        self.stream = stream
        self.tasks = _Tasks(fan_outs)
        self._column = 0

    def started(self, task: str) -> None:
        self.tasks.start(task)

    def _end_line(self) -> None:
        if self._column:
            self.stream.write("\n")
            self._column = 0

    def finished(self, task: str, ok: bool) -> None:
        state = self.tasks.finish(task, ok)
        if ok and not state.done:
            return
        count = f" x{state.finished}" if state.expected > 1 else ""
        entry = f"{task}{count} {state.elapsed(time.perf_counter()):.1f}s"
        if not ok:
            self._end_line()
            self.stream.write(f"  FAILED {entry}\n")
        elif self._column and self._column + 3 + len(entry) > self.WIDTH:
            self.stream.write(" |\n")
            self._column = 0
        if ok:
            text = f"  done: {entry}" if not self._column else f" | {entry}"
            self.stream.write(text)
            self._column += len(text)
        self.stream.flush()

    def __enter__(self) -> PlainProgress:
        return self

    def __exit__(self, *exc: object) -> None:
        self._end_line()
        self.stream.flush()


class LiveProgress:
    """For a terminal: a live block (rich) with one line per task, its state and elapsed time, and a progress
    bar for a fanned-out task. It is cleared when the run ends; the summary then lists the step times."""

    SPINNER = "dots"

    def __init__(self, stream: TextIO, fan_outs: dict[str, int]) -> None:
        from rich.console import Console

        self.console = Console(file=stream, force_terminal=True, highlight=False)
        self.tasks = _Tasks(fan_outs)
        self.started_at = time.perf_counter()
        self._live: Any = None
        self._spinners: dict[str, Any] = {}

    def started(self, task: str) -> None:
        self.tasks.start(task)

    def finished(self, task: str, ok: bool) -> None:
        self.tasks.finish(task, ok)

    def _spinner(self, name: str) -> Any:
        from rich.spinner import Spinner

        if name not in self._spinners:
            self._spinners[name] = Spinner(self.SPINNER, style="cyan")
        return self._spinners[name]

    def __rich__(self) -> Any:
        from rich.progress_bar import ProgressBar
        from rich.table import Table
        from rich.text import Text

        now = time.perf_counter()
        grid = Table.grid(padding=(0, 1))
        for _ in range(6):
            grid.add_column()
        with self.tasks.lock:
            tasks = list(self.tasks.tasks.values())
        for task in tasks:
            state = task.state
            mark: Any = {"done": Text("✓", style="green"), "failed": Text("✗", style="bold red")}.get(state)
            fan_out = task.expected > 1
            grid.add_row(
                mark or self._spinner(task.name),
                Text(f"{task.name:<22}"),
                Text(f"{state:<8}", style={"failed": "red", "done": "green"}.get(state, "cyan")),
                Text(f"{task.elapsed(now):6.1f}s"),
                ProgressBar(total=task.expected, completed=task.finished, width=24) if fan_out else "",
                Text(f"{task.finished}/{task.expected}") if fan_out else "",
            )
        grid.add_row("", Text(f"{'total':<22}", style="dim"), "", Text(f"{now - self.started_at:6.1f}s", style="dim"))
        return grid

    def __enter__(self) -> LiveProgress:
        from rich.live import Live

        self._live = Live(
            self,
            console=self.console,
            refresh_per_second=4,
            transient=True,
            redirect_stdout=False,
            redirect_stderr=False,
        )
        self._live.start()
        return self

    def __exit__(self, *exc: object) -> None:
        if self._live is not None:
            self._live.stop()


def progress_for(stream: TextIO, fan_outs: dict[str, int]) -> LiveProgress | PlainProgress:
    """A live display when ``stream`` is a terminal, plain lines otherwise."""
    if stream.isatty():
        return LiveProgress(stream, fan_outs)
    return PlainProgress(stream, fan_outs)
