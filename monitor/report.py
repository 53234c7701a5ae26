"""Live performance as people read it: the status table (``fraud monitor status``) and the Evidently report of
the matured cohorts (``fraud monitor report``; a CronJob runs it on a schedule).

    python -m monitor.report --db .fraud/monitor/join.sqlite --output .fraud/monitor/reports

The report is Evidently 0.7's classification preset per model version and endpoint, on the rows whose labels
have matured (the cohort of :func:`fraud_detection.monitoring.join.cohorts`, outcome = label, or 0 when no label
came), against the same version and endpoint one cohort earlier when that cohort has rows of both classes.
Each run writes a dated folder: ``index.html`` (the realised and estimated numbers, with links) and one
``<version>-<endpoint>.html`` per cohort of at least ``--min-rows`` rows. Every option is also a ``FRAUD_*``
variable (:class:`monitor.settings.ReportSettings`).
"""

from __future__ import annotations

import argparse
import html
import json
import logging
import math
import tempfile
from collections.abc import Sequence
from dataclasses import asdict
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pandas as pd

from fraud_detection import storage
from fraud_detection.monitoring import join, performance
from monitor.metrics import Snapshot
from monitor.options import add_options, build
from monitor.settings import ReportSettings

log = logging.getLogger("monitor.report")

ASSUMPTION = "the scores are calibrated: P(fraud | score s) = s"


def _number(value: float) -> str:
    return "-" if isinstance(value, float) and math.isnan(value) else f"{value:.4f}"


def _table(title: str, header: str, rows: list[str]) -> list[str]:
    return [title, f"  {header}", *(f"  {row}" for row in rows)]


def status_text(snapshot: Snapshot, now: datetime) -> str:
    """The snapshot as plain text: realised metrics, the estimate, alerting shifts, shadow comparisons."""
    lines = [f"live performance at {now.isoformat(timespec='seconds')}", ""]
    realised = [
        f"{r.model_version:<8} {r.endpoint:<9} {r.rows:<9} {r.positives:<7} {_number(r.precision):<10} "
        f"{_number(r.recall):<7} {_number(r.auprc):<7} {_number(r.alert_rate):<11} {_number(r.label_coverage)}"
        for r in snapshot.realised
    ]
    lines += _table(
        "matured cohort (realised):",
        "version  endpoint  rows      frauds  precision  recall  auprc   alert_rate  label_coverage",
        realised or ["(no matured rows yet)"],
    )
    estimated = [
        f"{e.model_version:<8} {e.endpoint:<9} {e.rows:<9} {_number(e.precision):<10} {_number(e.recall):<7} "
        f"{_number(e.fraud_rate):<11} {_number(e.alert_rate)}"
        for e in snapshot.estimated
    ]
    lines.append("")
    lines += _table(
        f"pending rows (an estimate that assumes {ASSUMPTION}):",
        "version  endpoint  rows      precision  recall  fraud_rate  alert_rate",
        estimated or ["(no pending rows)"],
    )
    alerting = [s for s in snapshot.shifts if s.alert]
    lines += ["", f"shift: {len(snapshot.shifts)} columns measured, {len(alerting)} above their threshold"]
    lines += [f"  {s.kind} {s.column}: PSI {s.psi:.3f} > {s.threshold:.3f}" for s in alerting]
    for (champion, challenger), c in sorted(snapshot.comparisons.items()):
        lines.append(
            f"shadow: challenger {challenger} - champion {champion} AUPRC {c.difference:+.4f} "
            f"[{c.low:+.4f}, {c.high:+.4f}] on {c.pairs} pairs{' (wins)' if c.low > 0 else ''}"
        )
    return "\n".join(lines) + "\n"


def status_json(snapshot: Snapshot, now: datetime) -> dict[str, Any]:
    """The snapshot as JSON-ready data (NaN as null)."""

    def clean(row: dict[str, Any]) -> dict[str, Any]:
        return {k: None if isinstance(v, float) and math.isnan(v) else v for k, v in row.items()}

    return {
        "at": now.isoformat(timespec="seconds"),
        "realised": [clean(asdict(r)) for r in snapshot.realised],
        "estimated": [clean(asdict(e)) for e in snapshot.estimated],
        "estimate_assumption": ASSUMPTION,
        "shifts": [clean({**asdict(s), "alert": s.alert}) for s in snapshot.shifts],
        "shadow": [
            clean({"champion_version": a, "challenger_version": b, **asdict(c)})
            for (a, b), c in sorted(snapshot.comparisons.items())
        ],
    }


def _evidently_page(current: pd.DataFrame, earlier: pd.DataFrame | None, path: Path) -> None:
    from evidently import BinaryClassification, DataDefinition, Dataset, Report
    from evidently.presets import ClassificationPreset

    definition = DataDefinition(
        classification=[
            BinaryClassification(
                target="outcome", prediction_labels="decision", prediction_probas="probability", pos_label=1
            )
        ],
        numerical_columns=["probability"],
    )

    def dataset(frame: pd.DataFrame) -> Any:
        columns = frame[["outcome", "decision", "probability"]].astype({"outcome": int, "decision": int})
        return Dataset.from_pandas(columns.reset_index(drop=True), data_definition=definition)

    reference = dataset(earlier) if earlier is not None else None
    Report([ClassificationPreset()], include_tests=False).run(dataset(current), reference).save_html(str(path))


def _index(settings: ReportSettings, realised: list[performance.Realised], pages: dict[str, str], now: datetime) -> str:
    rows = "".join(
        f"<tr><td>{html.escape(r.model_version)}</td><td>{html.escape(r.endpoint)}</td><td>{r.rows}</td>"
        f"<td>{r.positives}</td><td>{_number(r.precision)}</td><td>{_number(r.recall)}</td><td>{_number(r.auprc)}</td>"
        f"<td>{_number(r.alert_rate)}</td><td>{_number(r.label_coverage)}</td><td>"
        + (
            f'<a href="{html.escape(pages[f"{r.model_version}-{r.endpoint}"])}">Evidently</a>'
            if f"{r.model_version}-{r.endpoint}" in pages
            else f"fewer than {settings.min_rows} rows"
        )
        + "</td></tr>"
        for r in realised
    )
    return (
        '<!doctype html><html lang="en"><head><meta charset="utf-8"><title>Fraud detector: live performance</title>'
        "</head><body><h1>Live performance</h1>"
        f"<p>At {now.isoformat(timespec='seconds')}: rows scored within {settings.cohort_days:g} days before the "
        f"maturity cutoff ({settings.maturity_hours:g} hours after scoring). A row's outcome is its label, or "
        "legitimate when none came; pending rows count in none of these.</p>"
        "<table><thead><tr><th>version</th><th>endpoint</th><th>rows</th><th>frauds</th><th>precision</th>"
        "<th>recall</th><th>AUPRC</th><th>alert rate</th><th>label coverage</th><th>report</th></tr></thead>"
        f"<tbody>{rows or '<tr><td colspan=10>no matured rows yet</td></tr>'}</tbody></table></body></html>\n"
    )


def write_report(settings: ReportSettings, now: datetime | None = None) -> str:
    """Write the report of the matured cohorts at ``now`` (the wall clock by default) into a dated folder of
    ``settings.output``; returns that folder (a path or ``gs://`` URI)."""
    moment = now or datetime.now(UTC)
    store = join.JoinStore(settings.db)
    try:
        matured, _ = join.cohorts(store, moment, settings.maturity, settings.cohort)
        earlier, _ = join.cohorts(store, moment - settings.cohort, settings.maturity, settings.cohort)
    finally:
        store.close()
    realised = performance.realised(matured)
    folder = moment.strftime("%Y-%m-%dT%H%M%SZ")
    with tempfile.TemporaryDirectory(prefix="fraud-report-") as tmp:
        local = Path(tmp) if storage.is_gcs(settings.output) else Path(settings.output) / folder
        local.mkdir(parents=True, exist_ok=True)
        pages: dict[str, str] = {}
        for (version, endpoint), group in matured.groupby(performance.KEYS, sort=True):
            if len(group) < settings.min_rows:
                continue
            before = earlier[(earlier["model_version"] == version) & (earlier["endpoint"] == endpoint)]
            usable = len(before) >= settings.min_rows and before["outcome"].nunique() == 2
            name = f"{version}-{endpoint}"
            pages[name] = f"{name}.html"
            _evidently_page(group, before if usable else None, local / pages[name])
        (local / "index.html").write_text(_index(settings, realised, pages, moment), encoding="utf-8")
        (local / "summary.json").write_text(json.dumps([asdict(r) for r in realised], default=str) + "\n")
        if storage.is_gcs(settings.output):
            return storage.upload_dir(local, f"{settings.output.rstrip('/')}/{folder}", last="index.html")
    log.info("report of %d cohorts in %s", len(pages), local)
    return str(local)


def parser() -> argparse.ArgumentParser:
    """The options of ``python -m monitor.report``, one per :class:`ReportSettings` field."""
    found = argparse.ArgumentParser(prog="python -m monitor.report", description=__doc__.splitlines()[0])
    add_options(found, ReportSettings)
    return found


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m monitor.report`` (the CronJob's command)."""
    options = parser()
    settings = build(ReportSettings, options.parse_args(argv), options)
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    print(f"wrote the live performance report to {write_report(settings)}")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
