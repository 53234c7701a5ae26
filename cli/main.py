"""The ``fraud`` command line: run the pipeline locally, compile it, generate data.

Settings are built once here (``Settings()``), then passed down; nothing is read at import.
"""

from __future__ import annotations

import argparse
import logging
import sys
from collections.abc import Callable, Sequence
from contextlib import nullcontext
from importlib import metadata
from pathlib import Path
from typing import Any

from cli.common import command, knob_option
from fraud_detection.config import (
    FEATURE_SET_NAMES,
    SYNTHETIC_TRANSACTIONS_URI,
    SYNTHETIC_URI,
    ConfigError,
    DataKnobs,
    check_parameters,
    pipeline_knobs,
)
from fraud_detection.settings import Settings
from fraud_detection.transactions.mapping import BUILTIN as BUILTIN_MAPPINGS

Handler = Callable[[argparse.Namespace, Settings], int]


LOCAL_DEFAULTS = {
    "mlflow_tracking_uri": "FRAUD_MLFLOW_TRACKING_URI, MLFLOW_TRACKING_URI, or a SQLite file under FRAUD_HOME",
    "serving_root": "FRAUD_HOME/serving (a local folder; `fraud serve` reads its champion link)",
    "deploy_target": "local",
}
"""Parameters whose compiled (cluster) default makes no sense on a laptop, and what ``fraud run`` uses instead."""


def _local_value(name: str, settings: Settings) -> Any:
    if name == "mlflow_tracking_uri":
        return settings.tracking_uri()
    if name == "serving_root":
        return str((settings.home / "serving").resolve())
    return LOCAL_DEFAULTS[name]


def _add_run(subparsers: Any) -> None:
    parser = command(subparsers, "run", help="run the whole pipeline locally (kfp.local) and print a summary")
    parser.description = (
        "Run the pipeline on this machine with kfp.local. Every pipeline parameter is an option; the MLflow tracking "
        "URI defaults to a SQLite file under FRAUD_HOME (.fraud). A list parameter takes comma-separated values "
        "(--poison-levels 0,0.05) or a JSON list (--poison-levels '[0, 0.05]')."
    )
    groups: dict[str, Any] = {}
    for knob in pipeline_knobs():
        if knob.group not in groups:
            groups[knob.group] = parser.add_argument_group(f"{knob.group} parameters")
        default = knob.default
        help_text = knob.doc
        if knob.type is list:
            help_text += " Comma-separated, or a JSON list."
        if knob.name in LOCAL_DEFAULTS:
            default = None
            help_text += f" Compiled default: {knob.default}; fraud run uses {LOCAL_DEFAULTS[knob.name]}."
        groups[knob.group].add_argument(
            f"--{knob.name.replace('_', '-')}",
            dest=knob.name,
            type=knob_option(knob),
            default=default,
            help=help_text,
            metavar=knob.type.__name__.upper(),
        )
    parser.add_argument(
        "--runner",
        choices=["subprocess", "container"],
        default="subprocess",
        help="subprocess: every step in this Python; container: every step in the components image (podman)",
    )
    parser.add_argument(
        "--verbose",
        action="store_true",
        help="print kfp.local's raw output and every task's log as it runs (it always goes to the run's log file)",
    )
    parser.add_argument(
        "--summary-to",
        metavar="FILE",
        help="also append the run's Markdown summary (decision and gate table) to FILE, e.g. $GITHUB_STEP_SUMMARY",
    )
    parser.set_defaults(handler=_run)


def run_parameters(args: argparse.Namespace, settings: Settings) -> dict[str, Any]:
    """Every pipeline parameter of a ``fraud run`` (its options, with the local defaults filled in), checked and
    parsed by :func:`~fraud_detection.config.check_parameters` as ``fraud submit`` checks its own.

    Raises:
        ConfigError: naming every parameter at fault.
    """
    parameters = {knob.name: getattr(args, knob.name) for knob in pipeline_knobs()}
    for name in LOCAL_DEFAULTS:
        if parameters[name] is None:
            parameters[name] = _local_value(name, settings)
    names = {
        "data_uri": (SYNTHETIC_URI, SYNTHETIC_TRANSACTIONS_URI),
        "data_mapping": ("", *BUILTIN_MAPPINGS),
        "feature_set": ("", *FEATURE_SET_NAMES),
    }
    for knob, named in names.items():  # any other value is a file, which the steps read from anywhere
        value = parameters[knob]
        if isinstance(value, str) and value not in named and not value.startswith("gs://"):
            parameters[knob] = str(Path(value).expanduser().resolve())
    return check_parameters(parameters)


def _run(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.local import fan_out_sizes, run_local
    from pipelines.progress import progress_for
    from pipelines.runfolder import new_run_folder, publish
    from pipelines.summary import render_failure, render_summary

    try:
        parameters = run_parameters(args, settings)
    except ConfigError as error:
        print(f"fraud run: error: {error}", file=sys.stderr)
        return 2
    folder = new_run_folder(settings.home)
    print(f"Running pipeline locally; log and report in {folder}", flush=True)
    watch: dict[str, Any] = {"log_path": folder / "run.log"}
    display: Any = nullcontext()
    if args.verbose:
        watch["echo"] = sys.stdout
    else:
        display = watch["listener"] = progress_for(sys.stdout, fan_out_sizes(parameters))
    with display:
        if args.runner == "container":
            from pipelines.containers import run_in_containers

            run = run_in_containers(parameters, settings.pipeline_root, settings.home, **watch)
        else:
            run = run_local(parameters, settings.pipeline_root, **watch)
    if not run.succeeded:
        failure = render_failure(run)
        print(failure, file=sys.stderr)
        if args.summary_to:
            with open(args.summary_to, "a", encoding="utf-8") as out:
                out.write(f"# Fraud pipeline run: FAILED\n\n```\n{failure.strip()}\n```\n")
        return 1
    report = publish(run.outputs, parameters, folder)
    if args.summary_to and (folder / "summary.md").is_file():
        with open(args.summary_to, "a", encoding="utf-8") as out:
            out.write((folder / "summary.md").read_text(encoding="utf-8") + "\n")
    # Plain progress already printed each step's time; a terminal's live lines are gone, so the summary lists them.
    print(render_summary(run, parameters, report=report, steps=args.verbose or sys.stdout.isatty()))
    return 0


def _compile(args: argparse.Namespace, settings: Settings) -> int:
    from pipelines.compile import compile_pipeline

    path = compile_pipeline(Path(args.output), components_image=args.components_image)
    print(f"compiled {path}")
    return 0


def _generate(args: argparse.Namespace, settings: Settings) -> int:
    if args.kind == TRANSACTIONS_KIND:
        return _generate_transactions(args)
    from fraud_detection import data, synth

    rows = DataKnobs().synthetic_rows if args.rows is None else args.rows
    config = synth.SyntheticConfig(n_rows=rows, seed=args.seed, drift=args.drift)
    output = Path(args.output)
    csv = output.name.endswith((".csv", ".csv.gz"))
    if args.parts > 1:
        return _generate_parts(config, output, args.parts)
    if output.suffix != ".parquet" and not csv:
        print(f"error: {output}: use a .csv, .csv.gz or .parquet file name", file=sys.stderr)
        return 2
    frame = synth.generate(config)
    output.parent.mkdir(parents=True, exist_ok=True)
    if csv:
        frame.to_csv(output, index=False)
    else:
        data.write_parquet(frame, output)
    print(f"wrote {len(frame):,} rows ({int(frame['Class'].sum()):,} frauds, {frame['Class'].mean():.3%}) to {output}")
    return 0


TRANSACTIONS_KIND = "transactions"
"""``fraud data generate --kind transactions``: raw transactions in the customer_terminal schema."""


def _generate_transactions(args: argparse.Namespace) -> int:
    """Write the seeded raw-transaction data set (docs/transactions.md) as one CSV or Parquet file."""
    from fraud_detection import data
    from fraud_detection.transactions.generator import TransactionConfig, generate

    if args.parts != 1 or args.drift != DataKnobs().synthetic_drift:
        print("error: --parts and --drift apply to --kind public only", file=sys.stderr)
        return 2
    output = Path(args.output)
    csv = output.name.endswith((".csv", ".csv.gz"))
    if output.suffix != ".parquet" and not csv:
        print(f"error: {output}: use a .csv, .csv.gz or .parquet file name", file=sys.stderr)
        return 2
    try:
        config = TransactionConfig(seed=args.seed, **({} if args.rows is None else {"n_rows": args.rows}))
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    frame = generate(config)
    output.parent.mkdir(parents=True, exist_ok=True)
    if csv:
        frame.to_csv(output, index=False)
    else:
        data.write_parquet(frame, output)
    frauds = int(frame["is_fraud"].sum())
    print(
        f"wrote {len(frame):,} transactions ({frauds:,} frauds, {frauds / len(frame):.3%}) over {config.days} days "
        f"to {output}; read it with the customer_terminal mapping"
    )
    return 0


def _generate_parts(config: Any, output: Path, parts: int) -> int:
    """Write ``parts`` Parquet files into the folder ``output``, one slice of time each, one at a time."""
    from fraud_detection import data, synth

    if output.suffix:
        print(f"error: {output}: with --parts, --output is a folder (no file suffix)", file=sys.stderr)
        return 2
    output.mkdir(parents=True, exist_ok=True)
    rows = frauds = 0
    for part in range(parts):
        frame = synth.generate_part(config, part, parts)
        data.write_parquet(frame, output / f"part-{part:05d}.parquet")
        rows += len(frame)
        frauds += int(frame["Class"].sum())
        print(f"  part {part + 1}/{parts}: {len(frame):,} rows", file=sys.stderr, flush=True)
    print(f"wrote {rows:,} rows ({frauds:,} frauds, {frauds / rows:.3%}) to {output}/ in {parts} Parquet files")
    return 0


DISTRIBUTION = "fraud-detection-kfp"
"""The project's distribution name (pyproject.toml's ``[project] name``); ``fraud --version`` reports its version."""


def _version() -> str:
    """The installed version of this project, or a note saying it is not installed (run from a bare checkout)."""
    try:
        return metadata.version(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return "(not installed: run make install)"


def build_parser() -> argparse.ArgumentParser:
    """The ``fraud`` argument parser with every subcommand registered."""
    parser = argparse.ArgumentParser(prog="fraud", description="Train, audit and serve a card-fraud model.")
    parser.add_argument("--version", action="version", version=f"%(prog)s {_version()}")
    subparsers = parser.add_subparsers(dest="command", required=True, metavar="COMMAND")
    _add_run(subparsers)

    compile_parser = subparsers.add_parser(
        "compile", help="compile the pipeline to YAML", formatter_class=argparse.ArgumentDefaultsHelpFormatter
    )
    compile_parser.add_argument("--output", default="pipelines/fraud_pipeline.yaml", help="where to write the YAML")
    compile_parser.add_argument(
        "--components-image", default="", help="image every task runs (default: the placeholder in components/)"
    )
    compile_parser.set_defaults(handler=_compile)

    data_parser = subparsers.add_parser("data", help="data set utilities")
    data_sub = data_parser.add_subparsers(dest="data_command", required=True, metavar="COMMAND")
    generate = command(
        data_sub,
        "generate",
        help="write the seeded synthetic data set as CSV or Parquet",
    )
    generate.add_argument(
        "--output", required=True, help="file to write (.csv, .csv.gz or .parquet); with --parts, a folder"
    )
    generate.add_argument(
        "--kind",
        choices=("public", TRANSACTIONS_KIND),
        default="public",
        help="public: the credit-card schema (Time, V1..V28, Amount, Class); transactions: raw customer/terminal "
        "payments whose fraud lives in history (docs/transactions.md)",
    )
    knobs = DataKnobs()
    generate.add_argument(
        "--rows",
        type=int,
        default=None,
        help=f"number of rows (default: {knobs.synthetic_rows:,} public, 200,000 transactions)",
    )
    generate.add_argument("--seed", type=int, default=knobs.synthetic_seed, help="generator seed")
    generate.add_argument(
        "--drift", type=float, default=knobs.synthetic_drift, help="drift strength in the latest 10 %% of time"
    )
    generate.add_argument(
        "--parts",
        type=int,
        default=1,
        help="write this many Parquet files (slices of time, made one at a time: big data never sits in memory)",
    )
    generate.set_defaults(handler=_generate)

    for register in _optional_commands():
        register(subparsers)
    return parser


def _optional_commands() -> list[Callable[[Any], Any]]:
    """Subcommands contributed by the serving and cluster modules (imported only to register their parsers)."""
    from cli.cluster import add_logs_parser, add_submit_parser
    from cli.monitor import add_monitor_parser
    from cli.runs import add_runs_parser, add_ui_parser
    from cli.serve import add_predict_parser, add_serve_parser
    from cli.stream import add_stream_parser

    return [
        add_ui_parser,
        add_runs_parser,
        add_serve_parser,
        add_predict_parser,
        add_stream_parser,
        add_submit_parser,
        add_logs_parser,
        add_monitor_parser,
    ]


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of the ``fraud`` command."""
    parser = build_parser()
    args = parser.parse_args(argv)
    settings = Settings()
    logging.basicConfig(level=settings.log_level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    handler: Handler = args.handler
    return handler(args, settings)


if __name__ == "__main__":
    sys.exit(main())
