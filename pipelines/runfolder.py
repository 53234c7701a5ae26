"""One folder per local run (``FRAUD_HOME/runs/<time>/``): the run's log, its report page (``index.html``), its
Markdown summary (``summary.md``) and the full audit reports beside it under names a browser opens (kfp.local
names every artifact file ``report``)."""

from __future__ import annotations

import shutil
import time
from pathlib import Path
from typing import Any

from fraud_detection.steps.report import REPORT_LABELS, inputs_from_artifacts, report_step

FILE_NAMES = {
    "poison report": "poison.html",
    "fairness report": "fairness.html",
    "drift report": "drift.html",
    "decision record": "decision.md",
}


def new_run_folder(home: Path) -> Path:
    """A fresh folder for one run under ``home/runs`` (named by its start time)."""
    stamp = time.strftime("%Y%m%d-%H%M%S")
    folder = home / "runs" / stamp
    suffix = 1
    while folder.exists():
        suffix += 1
        folder = home / "runs" / f"{stamp}-{suffix}"
    folder.mkdir(parents=True)
    return folder


def publish(outputs: dict[str, Any], parameters: dict[str, Any], folder: Path) -> Path:
    """Copy the audit reports and the Markdown summary into ``folder`` and write its ``index.html`` linking them;
    return the page."""
    links = {}
    for label, name in REPORT_LABELS.items():
        source = Path(getattr(outputs.get(name), "path", "") or "")
        if source.is_file():
            shutil.copyfile(source, folder / FILE_NAMES[label])
            links[label] = FILE_NAMES[label]
    summary = Path(getattr(outputs.get("run_summary"), "path", "") or "")
    if summary.is_file():
        shutil.copyfile(summary, folder / "summary.md")
    page = folder / "index.html"
    report_step(
        inputs_from_artifacts(outputs, str(parameters.get("data_uri", "")), links),
        page,
        str(parameters.get("mlflow_tracking_uri", "")),
        str(parameters.get("mlflow_experiment", "")),
        str(parameters.get("registered_model_name", "")),
    )
    return page
