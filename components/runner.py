"""The one step runner every component body goes through.

A component body is a short shim: it opens :func:`step`, calls one library step with its artifact paths, and
hands the step's results to KFP. What every step needs alike lives here:

* logging set up the same way in every step process;
* the step's outcome written as data (:mod:`components.outcome`) next to its task's output artifacts: its time,
  and when it fails, its reason, whether it was raised on purpose, and its own last log lines (``fraud run``
  builds its failure summary from these records) before the process exits non-zero;
* the conversion between "not measured" (None in the library) and KFP's float parameters (-1);
* artifact paths as :class:`~pathlib.Path`, files the step wrote handed over to KFP's artifacts, and metrics
  logged only when finite.

Component bodies import this module inside the function (KFP ships only the function's source), so it must
stay importable in the components image with nothing but the project installed.
"""

from __future__ import annotations

import argparse
import json
import logging
import shutil
import sys
import tempfile
import time
import traceback
from collections import deque
from collections.abc import Iterator, Mapping, Sequence
from contextlib import contextmanager, redirect_stdout
from pathlib import Path
from typing import Any

from components.outcome import StepFailure, StepOutcome, write_outcome
from fraud_detection.config import ConfigError
from fraud_detection.schema import DataValidationError
from fraud_detection.tracking import finite_metrics

NOT_MEASURED = -1.0
"""How a float output says "not measured" to KFP (parameters cannot be None); every such value is >= 0."""


def setup_logging(level: str = "INFO") -> None:
    """Plain, timestamped log lines on stderr for a step process."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )


DELIBERATE_ERRORS: tuple[type[BaseException], ...] = (DataValidationError, ConfigError, FileNotFoundError)
"""Errors the project raises on purpose (bad data, bad parameters, a missing file): the message alone explains
the failure, so no traceback. Anything else is unexpected."""

TAIL_LINES = 15
"""How many of its own last log lines a step's record keeps."""

OWN_LOGGERS = ("fraud_detection", "components", "ops", "pipelines", "serving", "streaming")
"""The project's packages: their log records are the step's own from INFO; other libraries' count from WARNING."""


class _TailHandler(logging.Handler):
    """Keeps the step's own last log lines (the project's records, and other libraries' warnings and errors)."""

    def __init__(self, lines: deque[str]) -> None:
        super().__init__(logging.INFO)
        self.lines = lines

    def emit(self, record: logging.LogRecord) -> None:
        if record.name.split(".")[0] in OWN_LOGGERS or record.levelno >= logging.WARNING:
            self.lines.extend(f"{record.levelname} {record.name}: {record.getMessage()}".splitlines())


class _TeeLines:
    """Stands in for stdout in a step process: writes through, and keeps the step's printed lines."""

    def __init__(self, stream: Any, lines: deque[str]) -> None:
        self.stream = stream
        self.lines = lines
        self._partial = ""

    def write(self, text: str) -> int:
        self.stream.write(text)
        *done, self._partial = (self._partial + text).split("\n")
        self.lines.extend(line.rstrip() for line in done if line.strip())
        return len(text)

    def flush(self) -> None:
        self.stream.flush()

    def __getattr__(self, name: str) -> Any:
        return getattr(self.stream, name)


def task_folder(argv: Sequence[str] | None = None) -> Path | None:
    """Where this task keeps its output artifacts under the pipeline root, read from the executor input KFP passes
    every Python component (``--executor_input``, in ``argv``, default ``sys.argv``): the folder of its output
    artifacts (a ``gs://`` URI as the step sees it, on the bucket's mount), else that of its executor output file.
    None outside KFP (a component body called as a plain function)."""
    parser = argparse.ArgumentParser(add_help=False)
    parser.add_argument("--executor_input")
    known, _ = parser.parse_known_args(list(sys.argv[1:] if argv is None else argv))
    try:
        outputs = json.loads(known.executor_input or "{}").get("outputs", {})
    except ValueError:
        return None
    for name in sorted(outputs.get("artifacts", {})):
        for artifact in outputs["artifacts"][name].get("artifacts", []):
            if artifact.get("uri"):
                from kfp import dsl

                return Path(dsl.Artifact(uri=artifact["uri"]).path).parent
    output_file = outputs.get("outputFile")
    return Path(output_file).parent if output_file else None


def _failure(error: Exception) -> StepFailure:
    deliberate = isinstance(error, DELIBERATE_ERRORS)
    where = ""
    frames = traceback.extract_tb(error.__traceback__)
    if not deliberate and frames:
        # the innermost frame in the project's own code, else the innermost one
        own = [f for f in frames if set(Path(f.filename).parts) & set(OWN_LOGGERS) and f.filename != __file__]
        frame = (own or frames)[-1]
        where = f"{Path(frame.filename).name}:{frame.lineno} in {frame.name}"
    return StepFailure(
        reason=str(error).strip() or type(error).__name__,
        deliberate=deliberate,
        error_type=type(error).__name__,
        where=where,
    )


@contextmanager
def step(name: str) -> Iterator[None]:
    """Run a step body: logging set up, its outcome written as a record (:func:`task_folder`), and any exception
    turned into a failure record and exit status 1.

    Args:
        name: the step as the failure summary names it (``load``, ``poison-level 0.05``, ...).
    """
    setup_logging()
    tail: deque[str] = deque(maxlen=TAIL_LINES)
    handler = _TailHandler(tail)
    logging.getLogger().addHandler(handler)
    started = time.perf_counter()
    try:
        with redirect_stdout(_TeeLines(sys.stdout, tail)):
            yield
    except Exception as error:
        failure = _failure(error)
        if not failure.deliberate:
            traceback.print_exc(file=sys.stderr)
        print(f"step {name} failed: {failure.reason}", file=sys.stderr, flush=True)
        _record(StepOutcome(step=name, seconds=time.perf_counter() - started, failure=failure, log_tail=list(tail)))
        raise SystemExit(1) from error
    finally:
        logging.getLogger().removeHandler(handler)
    _record(StepOutcome(step=name, seconds=time.perf_counter() - started, log_tail=list(tail)))


def _record(outcome: StepOutcome) -> None:
    folder = task_folder()
    if folder is not None:
        write_outcome(outcome, folder)


def to_kfp(value: float | None) -> float:
    """A library value for a KFP float output: None ("not measured") becomes :data:`NOT_MEASURED`."""
    return NOT_MEASURED if value is None else float(value)


def from_kfp(value: float) -> float | None:
    """A KFP float input back to the library's form: :data:`NOT_MEASURED` (any negative) becomes None."""
    return None if value < 0 else float(value)


@contextmanager
def scratch() -> Iterator[Path]:
    """A temporary folder a step writes its files into before :func:`deliver` hands them to KFP (MLflow names
    logged files after their own names, which KFP's artifact paths are not)."""
    with tempfile.TemporaryDirectory(prefix="fraud-step-") as folder:
        yield Path(folder)


def deliver(source: Path, artifact: Any) -> None:
    """Copy a file a step wrote to a KFP output artifact's path."""
    target = Path(artifact.path)
    target.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(source, target)


def path(artifact: Any) -> Path:
    """The local path of a KFP artifact (``Input[...]`` or ``Output[...]``)."""
    return Path(artifact.path)


def log_metrics(artifact: Any, metrics: Mapping[str, Any]) -> None:
    """Log every finite number of ``metrics`` to a KFP ``Metrics`` artifact (True/False as 1/0; None, NaN, inf
    and non-numbers are skipped)."""
    numbers = {k: float(v) if isinstance(v, bool) else v for k, v in metrics.items()}
    for name, value in finite_metrics(numbers).items():
        artifact.log_metric(name, value)
