"""The drift report: Evidently's own HTML (its JavaScript embedded, so it renders offline) and a JSON summary."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from fraud_detection import reports
from fraud_detection.audits.drift import DriftResult


@dataclass(frozen=True)
class DriftFiles:
    """What :func:`render_drift` wrote."""

    report_html: Path
    """``drift_report.html``: Evidently's report."""
    summary_json: Path
    """``drift_summary.json``: the result as JSON, with these paths."""

    def paths(self) -> list[Path]:
        """Every file written, report first."""
        return [self.report_html, self.summary_json]


def render_drift(result: DriftResult, out_dir: Path | str) -> DriftFiles:
    """Write the Evidently report and the JSON summary into ``out_dir`` (created if needed); return their paths.

    Raises:
        ValueError: the result carries no Evidently snapshot.
    """
    if result.snapshot is None:
        raise ValueError("the drift result has no Evidently snapshot to render")
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    files = DriftFiles(report_html=out / "drift_report.html", summary_json=out / "drift_summary.json")
    result.snapshot.save_html(str(files.report_html))
    paths = {"html": str(files.report_html), "json": str(files.summary_json)}
    reports.write_json({**result.to_dict(), "paths": paths}, files.summary_json)
    return files


__all__ = ["DriftFiles", "render_drift"]
