"""The drift report: Evidently's own HTML (its JavaScript embedded, so it renders offline) and a JSON summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import ClassVar

from fraud_detection import reports
from fraud_detection.audits.drift import DriftResult


@dataclass(frozen=True)
class DriftFiles(reports.ReportFiles):
    """What :func:`render_drift` wrote: ``drift_report.html`` (Evidently's report) and ``drift_summary.json`` (the
    result as JSON, with these paths)."""

    NAMES: ClassVar[tuple[str, ...]] = ("drift_report.html", "drift_summary.json")
    summary_json: Path


def render_drift(result: DriftResult, out_dir: Path | str) -> DriftFiles:
    """Write the Evidently report and the JSON summary into ``out_dir`` (created if needed); return their paths.

    Raises:
        ValueError: the result carries no Evidently snapshot.
    """
    if result.snapshot is None:
        raise ValueError("the drift result has no Evidently snapshot to render")
    files = DriftFiles.in_folder(out_dir)
    result.snapshot.save_html(str(files.report_html))
    paths = {"html": str(files.report_html), "json": str(files.summary_json)}
    reports.write_json({**result.to_dict(), "paths": paths}, files.summary_json)
    return files


__all__ = ["DriftFiles", "render_drift"]
