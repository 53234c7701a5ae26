"""The one step runner every component body goes through.

A component body is a short shim: it opens :func:`step`, calls one library step with its artifact paths, and
hands the step's results to KFP. What every step needs alike lives here:

* logging set up the same way in every step process;
* a failure, whatever its type, printed on one marked line that names the step (``fraud run`` reads it for
  its failure summary) before the process exits non-zero;
* the conversion between "not measured" (None in the library) and KFP's float parameters (-1);
* artifact paths as :class:`~pathlib.Path`, files the step wrote handed over to KFP's artifacts, and metrics
  logged only when finite.

Component bodies import this module inside the function (KFP ships only the function's source), so it must
stay importable in the components image with nothing but the project installed.
"""

from __future__ import annotations

import logging
import shutil
import sys
import tempfile
import traceback
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from fraud_detection.config import ConfigError, pipeline_knobs
from fraud_detection.schema import DataValidationError
from fraud_detection.tracking import finite_metrics

ERROR_MARKER = "fraud-step-error:"
"""Prefix of the one line a failing step prints with its reason; ``fraud run`` shows it in the summary."""

NOT_MEASURED = -1.0
"""How a float output says "not measured" to KFP (parameters cannot be None); every such value is >= 0."""


def setup_logging(level: str = "INFO") -> None:
    """Plain, timestamped log lines on stderr for a step process."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )


EXPLAINED_ERRORS: tuple[type[BaseException], ...] = (DataValidationError, ConfigError, FileNotFoundError)
"""Errors whose message alone explains the failure (bad data, bad parameters, a missing file): no traceback."""


@contextmanager
def step(name: str) -> Iterator[None]:
    """Run a step body: logging set up, and any exception turned into one marked line and exit status 1.

    Args:
        name: the step as the failure summary names it (``load``, ``poison-level 0.05``, ...).
    """
    setup_logging()
    try:
        yield
    except Exception as error:
        message = str(error).strip() or type(error).__name__
        if not isinstance(error, EXPLAINED_ERRORS):
            traceback.print_exc(file=sys.stderr)
        if not isinstance(error, ValueError | FileNotFoundError):
            message = f"{type(error).__name__}: {message}"
        print(f"{ERROR_MARKER} {name}: {message}", file=sys.stderr, flush=True)
        raise SystemExit(1) from error


def to_kfp(value: float | None) -> float:
    """A library value for a KFP float output: None ("not measured") becomes :data:`NOT_MEASURED`."""
    return NOT_MEASURED if value is None else float(value)


def from_kfp(value: float) -> float | None:
    """A KFP float input back to the library's form: :data:`NOT_MEASURED` (any negative) becomes None."""
    return None if value < 0 else float(value)


def knob_values(values: Mapping[str, Any]) -> dict[str, Any]:
    """Those of ``values`` (a component's ``locals()``) that are pipeline knobs, by name."""
    names = {k.name for k in pipeline_knobs()}
    return {k: v for k, v in values.items() if k in names}


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
