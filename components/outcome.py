"""A step's outcome as data: what :func:`components.runner.step` writes when a step ends, and its reader.

Each step writes one small JSON record (:class:`StepOutcome`) next to its task's output artifacts, under the
pipeline root: kfp.local's task folder on this machine (the folder is mounted at the same path in a container),
and the task's folder in the bucket on a cluster (KFP and Vertex hand a step its artifacts' paths on the bucket's
mount). ``fraud run`` reads the records of its run with :func:`read_outcomes`, and so can anyone with the run's
folder on a cluster. No log line carries meaning: the summary is built from these records.

Standard library and pydantic only at import (a component body imports this in the components image).
"""

from __future__ import annotations

import json
import re
import sys
from pathlib import Path

from pydantic import BaseModel, Field

FILE_PREFIX = "outcome-"
"""Records are named ``outcome-<step>.json``: kfp.local gives every item of a fan-out the same task folder."""


class StepFailure(BaseModel):
    """Why a step failed."""

    reason: str = Field(description="the error's own message, or its type when it has none")
    deliberate: bool = Field(
        description="raised on purpose by the project (bad data, bad parameters, a missing file): the reason "
        "alone explains the failure; False for anything unexpected (a bug, a library's error)"
    )
    error_type: str = Field(description="the exception's class name, e.g. DataValidationError")
    where: str = Field(default="", description="an unexpected error's innermost frame: file:line in function")


class StepOutcome(BaseModel):
    """How one step ended: its name, its time, its failure if it failed, and its own last log lines."""

    step: str = Field(description="the step as the summary names it: load, train xgboost, poison-level 0.05, ...")
    seconds: float = Field(ge=0, description="how long the step body ran")
    failure: StepFailure | None = Field(default=None, description="None when the step succeeded")
    log_tail: list[str] = Field(
        default_factory=list,
        description="the step's own last log lines: the project's log records, libraries' warnings and the "
        "step's prints (never KFP's executor input or a library's INFO chatter)",
    )

    @property
    def ok(self) -> bool:
        """True when the step succeeded."""
        return self.failure is None

    def file_name(self) -> str:
        """The record's file name in its task folder."""
        return f"{FILE_PREFIX}{re.sub(r'[^A-Za-z0-9._]+', '-', self.step).strip('-')}.json"


def write_outcome(outcome: StepOutcome, folder: Path) -> Path:
    """Write ``outcome`` into ``folder`` (created if missing); return the file."""
    folder.mkdir(parents=True, exist_ok=True)
    path = folder / outcome.file_name()
    path.write_text(outcome.model_dump_json(indent=2) + "\n", encoding="utf-8")
    return path


def read_outcomes(folder: Path) -> list[StepOutcome]:
    """Every step record under ``folder`` (a run's folder or one task's: on a cluster, the run's folder on the
    bucket's mount, ``/gcs/<bucket>/...``, or a copy of it), failures first, then by step name. A file that is not
    a record is skipped with a note on stderr."""
    outcomes = []
    for path in sorted(Path(folder).rglob(f"{FILE_PREFIX}*.json")):
        try:
            outcomes.append(StepOutcome.model_validate(json.loads(path.read_text(encoding="utf-8"))))
        except (OSError, ValueError) as error:
            print(f"skipping {path}: not a step record ({error})", file=sys.stderr)
    return sorted(outcomes, key=lambda o: (o.ok, o.step))
