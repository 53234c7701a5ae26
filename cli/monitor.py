"""``fraud monitor``: the loop after deploy on this machine (docs/monitoring.md).

* ``fraud monitor joiner`` joins the prediction log and the labels into the store and serves the live metrics
  (:mod:`monitor.joiner`);
* ``fraud monitor controller`` is Alertmanager's webhook receiver: retrain, roll back, promote
  (:mod:`monitor.controller`);
* ``fraud monitor import-labels`` stores the labels of CSV or JSON-lines files;
* ``fraud monitor status`` prints live performance, the estimate on pending rows, shift and the shadow
  comparison, from the store;
* ``fraud monitor report`` writes the Evidently report of the matured cohorts (:mod:`monitor.report`).

Every option is also a ``FRAUD_*`` variable, as for ``python -m monitor.joiner``. Without ``--db`` (or
``FRAUD_DB``) the store is ``FRAUD_HOME/monitor/join.sqlite``; without ``--serving-root`` the controller moves
the local champion (``FRAUD_HOME/serving``), the one ``fraud serve`` reads.
"""

from __future__ import annotations

import argparse
import json
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from cli.common import command

JOINER_STATUS_OPTIONS = [
    "db",
    "maturity_hours",
    "cohort_days",
    "resamples",
    "serving_minutes",
    "reference",
    "reference_uri",
    "tracking_uri",
    "shift_threshold",
]
"""The joiner's settings ``fraud monitor status`` takes: what one snapshot of the store needs."""


def _local(args: argparse.Namespace, home: Path, name: str) -> None:
    """Fill option ``name`` with its local default (:data:`LOCAL`, under ``home``) when neither the option nor its
    ``FRAUD_*`` variable is set."""
    if getattr(args, name, None) is None and f"FRAUD_{name.upper()}" not in os.environ:
        setattr(args, name, home / LOCAL[name])


def _store(args: argparse.Namespace, settings: Any) -> None:
    _local(args, Path(settings.home), "db")


def _options(parser: argparse.ArgumentParser, kind: Any, names: list[str] | None = None) -> None:
    """The options of ``kind``'s settings (or of ``names``), the local defaults of this module named in the help of
    the settings that have one (the store, the serving root, the report's folder)."""
    from monitor.options import add_options

    wanted = names or list(kind.model_fields)
    if others := [name for name in wanted if name not in LOCAL]:
        add_options(parser, kind, others)
    for name in (name for name in wanted if name in LOCAL):
        description = " ".join((kind.model_fields[name].description or "").replace("``", "").split())
        parser.add_argument(
            f"--{name.replace('_', '-')}",
            dest=name,
            default=None,
            help=f"{description} (default: FRAUD_HOME/{LOCAL[name]}) [FRAUD_{name.upper()}]",
        )


LOCAL = {
    "db": Path("monitor") / "join.sqlite",
    "serving_root": Path("serving"),
    "output": Path("monitor") / "reports",
}
"""Settings without a usable default on a laptop, and where under ``FRAUD_HOME`` ``fraud monitor`` puts them when
neither the option nor its variable is set."""


def run_joiner(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Any) -> int:
    """Handler of ``monitor joiner``: run until Ctrl-C (exit 1 when the reference cannot be read)."""
    from fraud_detection.monitoring.reference import ReferenceError
    from monitor.joiner import serve
    from monitor.options import build
    from monitor.settings import JoinerSettings

    _store(args, settings)
    try:
        return serve(build(JoinerSettings, args, parser))
    except ReferenceError as error:
        print(f"fraud monitor joiner: error: {error}", file=sys.stderr)
        return 1


def run_controller(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Any) -> int:
    """Handler of ``monitor controller``: serve until Ctrl-C (exit 1 when the token file is missing or empty)."""
    from monitor.controller import read_token, serve
    from monitor.options import build
    from monitor.settings import ControllerSettings

    _local(args, Path(settings.home).resolve(), "serving_root")
    if args.serving_root is not None:
        args.serving_root = str(args.serving_root)
    found = build(ControllerSettings, args, parser)
    try:
        read_token(found.token_file)
    except (OSError, ValueError) as error:
        print(f"fraud monitor controller: error: {error}", file=sys.stderr)
        return 1
    return serve(found)


def run_import_labels(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Any) -> int:
    """Handler of ``monitor import-labels`` (exit 1 naming the file and line of a bad label)."""
    from fraud_detection.monitoring.labels import LabelError
    from monitor.joiner import import_labels

    _store(args, settings)
    missing = [str(path) for path in args.files if not path.is_file()]
    if missing:
        print(f"fraud monitor import-labels: error: no such file: {', '.join(missing)}", file=sys.stderr)
        return 1
    try:
        count = import_labels(Path(args.db), args.files)
    except LabelError as error:
        print(f"fraud monitor import-labels: error: {error}", file=sys.stderr)
        return 1
    print(f"stored {count:,} labels in {args.db}")
    return 0


def run_status(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Any) -> int:
    """Handler of ``monitor status``: one snapshot of the store, as text or JSON."""
    from fraud_detection.monitoring import join, reference
    from monitor.metrics import take
    from monitor.options import build
    from monitor.report import status_json, status_text
    from monitor.settings import JoinerSettings

    _store(args, settings)
    found = build(JoinerSettings, args, parser)
    if not found.db.is_file():
        print(f"fraud monitor status: error: {found.db}: no join store yet (fraud monitor joiner)", file=sys.stderr)
        return 1
    try:
        baseline = (
            reference.from_file(found.reference)
            if found.reference
            else reference.load(found.reference_uri, found.tracking_uri)
            if found.reference_uri
            else None
        )
    except reference.ReferenceError as error:
        print(f"fraud monitor status: error: {error}", file=sys.stderr)
        return 1
    now = datetime.now(UTC)
    store = join.JoinStore(found.db)
    try:
        snapshot = take(
            store, now, found.windows(), baseline, default_threshold=found.shift_threshold, resamples=found.resamples
        )
    finally:
        store.close()
    print(json.dumps(status_json(snapshot, now), indent=2) if args.json else status_text(snapshot, now), end="\n")
    return 0


def run_report(parser: argparse.ArgumentParser, args: argparse.Namespace, settings: Any) -> int:
    """Handler of ``monitor report``: write the report, print where."""
    from monitor.options import build
    from monitor.report import write_report
    from monitor.settings import ReportSettings

    _store(args, settings)
    _local(args, Path(settings.home), "output")
    if args.output is not None:
        args.output = str(args.output)
    found = build(ReportSettings, args, parser)
    if not found.db.is_file():
        print(f"fraud monitor report: error: {found.db}: no join store yet (fraud monitor joiner)", file=sys.stderr)
        return 1
    print(f"wrote the live performance report to {write_report(found)}")
    return 0


@dataclass(frozen=True)
class Subcommand:
    """One ``fraud monitor`` subcommand: its help line, its description, the settings class of
    :mod:`monitor.settings` its options come from (all its fields, or ``names``), and its handler."""

    help: str
    description: str
    settings: str
    handler: Callable[[argparse.ArgumentParser, argparse.Namespace, Any], int]
    names: list[str] | None = None


SUBCOMMANDS = {
    "joiner": Subcommand(
        "join prediction records and labels into the store; serve the live metrics on /metrics",
        "Consume the prediction log and the labels topic (with --bootstrap-servers; without it, only serve the "
        "metrics of the store that imports feed) and publish live performance, the estimate, skew, drift and the "
        "shadow comparison on /metrics, until Ctrl-C. Skew is measured against --reference (a file) or the "
        "reference recorded with the model at --reference-uri (models:/fraud-detector@champion with "
        "--tracking-uri, runs:/<run id>, or a model directory). Store: FRAUD_HOME/monitor/join.sqlite by default.",
        "JoinerSettings",
        run_joiner,
    ),
    "controller": Subcommand(
        "Alertmanager's webhook receiver: retrain, roll back, promote (bearer token)",
        "Serve POST /alerts (Alertmanager's webhook, version 4, with the bearer token of --token-file) and GET "
        "/healthz until Ctrl-C. Drift or decay starts one retraining run (--retrain-command), a degraded newest "
        "version rolls the champion back, a winning shadow challenger is promoted through the gates. Serving "
        "root: FRAUD_HOME/serving by default.",
        "ControllerSettings",
        run_controller,
    ),
    "import-labels": Subcommand(
        "store the labels of CSV or JSON-lines files (tx_id, label, label_time)",
        "Store labels keyed by transaction id: a CSV with the header tx_id,label,label_time, or JSON lines of "
        "those fields. Importing the same file twice, or files out of order, gives the same store. Store: "
        "FRAUD_HOME/monitor/join.sqlite by default.",
        "JoinerSettings",
        run_import_labels,
        ["db"],
    ),
    "status": Subcommand(
        "print live performance, the estimate on pending rows, shift and the shadow comparison",
        "One snapshot of the store, as the joiner's gauges show it: realised precision, recall, AUPRC, alert rate "
        "and label coverage per model version and endpoint on the matured cohort; the estimate on pending rows "
        "(assuming calibrated scores); the PSI of each column above its threshold; the shadow challenger's "
        "paired AUPRC difference.",
        "JoinerSettings",
        run_status,
        JOINER_STATUS_OPTIONS,
    ),
    "report": Subcommand(
        "write the Evidently report of live performance on the matured cohorts (HTML)",
        "Evidently's classification report per model version and endpoint on the matured cohort, against the "
        "cohort before it, in a dated folder of --output (local or gs://) with an index.html. The CronJob "
        "fraud-live-report of manifests/overlays/loop runs it daily.",
        "ReportSettings",
        run_report,
    ),
}
"""``fraud monitor``'s subcommands, in the order its help lists them."""

MONITOR_DESCRIPTION = (
    "The loop after deploy on this machine (docs/monitoring.md): `joiner` joins the prediction log and the labels "
    "and serves the live metrics, `controller` acts on Alertmanager's alerts, `import-labels` stores a labels "
    "file, `status` prints live performance and `report` writes the Evidently report. Every option is also a "
    "FRAUD_* variable. The store defaults to FRAUD_HOME/monitor/join.sqlite."
)


def add_monitor_parser(subparsers: Any) -> None:
    """Register ``monitor`` and its subcommands (:data:`SUBCOMMANDS`)."""
    from monitor import settings as kinds

    summary = "the loop after deploy: label joiner, controller, label import, live status, Evidently report"
    parser = command(subparsers, "monitor", help=summary, description=MONITOR_DESCRIPTION)
    commands = parser.add_subparsers(dest="monitor_command", required=True, metavar="COMMAND")
    for name, sub in SUBCOMMANDS.items():
        child = command(commands, name, help=sub.help, description=sub.description)
        _options(child, getattr(kinds, sub.settings), sub.names)
        if name == "import-labels":
            child.add_argument("files", type=Path, nargs="+", metavar="FILE", help="CSV or .jsonl files of labels")
        if name == "status":
            child.add_argument("--json", action="store_true", help="print JSON instead of text")
        child.set_defaults(handler=partial(sub.handler, child))
