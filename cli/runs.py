"""``fraud ui`` (the MLflow UI on the local store) and ``fraud runs`` (past local runs, newest first)."""

from __future__ import annotations

import argparse
import os
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from typing import Any, TextIO

from fraud_detection.config import pipeline_knobs
from fraud_detection.settings import Settings


def _knob_default(name: str) -> Any:
    return next(k.default for k in pipeline_knobs() if k.name == name)


def add_ui_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``fraud ui``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "ui",
        help="start the MLflow UI on the local store (127.0.0.1) and print its address",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--port", type=int, default=5000, help="port on 127.0.0.1")
    parser.add_argument("--timeout", type=float, default=120.0, help="seconds to wait for the UI to answer")
    parser.set_defaults(handler=ui_command)
    return parser


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2) as response:
            return bool(response.status == 200)
    except (urllib.error.URLError, OSError):
        return False


def _interrupt(signum: int, frame: Any) -> None:
    raise KeyboardInterrupt


def ui_command(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    """Handler of ``fraud ui``: serve the MLflow UI on 127.0.0.1 until Ctrl-C (or the server stops)."""
    out = out or sys.stdout
    uri = settings.tracking_uri()
    if uri.startswith(("http://", "https://")):
        print(f"MLflow runs on a server: open {uri}", file=out)
        return 0
    if uri.startswith("sqlite:///"):
        database = uri[len("sqlite:///") :]
        if not os.path.exists(database):
            print(f"fraud ui: no MLflow store at {database} yet; run `fraud run` first", file=sys.stderr)
            return 2
    address = f"http://127.0.0.1:{args.port}"
    command = [sys.executable, "-m", "mlflow", "ui", "--backend-store-uri", uri, "--host", "127.0.0.1"]
    command += ["--port", str(args.port)]
    # Its own session, so the exit below stops the server and only its workers; SIGTERM (a supervisor, timeout)
    # ends this process through that same path.
    log_path = settings.home / "logs" / "mlflow-ui.log"
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with log_path.open("wb") as log:
        server = subprocess.Popen(command, start_new_session=True, stdout=log, stderr=subprocess.STDOUT)
    previous = signal.signal(signal.SIGTERM, _interrupt)
    try:
        deadline = time.monotonic() + args.timeout
        while not _answers(f"{address}/health"):
            if server.poll() is not None or time.monotonic() > deadline:
                tail = log_path.read_text(errors="replace")[-2000:]
                print(f"fraud ui: the MLflow UI did not start on {address} (log {log_path}):\n{tail}", file=sys.stderr)
                return 1
            time.sleep(0.5)
        print(f"MLflow UI: {address}  (store {uri}; its log {log_path}; Ctrl-C to stop)", file=out, flush=True)
        return server.wait()
    except KeyboardInterrupt:
        return 0
    finally:
        signal.signal(signal.SIGTERM, previous)
        if server.poll() is None:
            os.killpg(server.pid, signal.SIGTERM)
            try:
                server.wait(timeout=15)
            except subprocess.TimeoutExpired:
                os.killpg(server.pid, signal.SIGKILL)
                server.wait()


def add_runs_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``fraud runs``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "runs",
        help="list past runs (newest first) with their data version, AUPRC and promotion decision",
        formatter_class=argparse.ArgumentDefaultsHelpFormatter,
    )
    parser.add_argument("--experiment", default=_knob_default("mlflow_experiment"), help="MLflow experiment")
    parser.add_argument(
        "--model-name", default=_knob_default("registered_model_name"), help="registered model (for versions)"
    )
    parser.add_argument("--limit", type=int, default=20, help="at most this many runs")
    parser.set_defaults(handler=runs_command)
    return parser


def _decision(tags: dict[str, str]) -> str:
    return {"true": "PROMOTED", "false": "not promoted"}.get(tags.get("promoted", ""), "no decision")


def runs_command(args: argparse.Namespace, settings: Settings, out: TextIO | None = None) -> int:
    """Handler of ``fraud runs``: one line per training run, from the MLflow store."""
    import mlflow

    out = out or sys.stdout
    uri = settings.tracking_uri()
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name(args.experiment)
    if experiment is None:
        print(f"no runs yet: experiment {args.experiment!r} does not exist in {uri}", file=out)
        return 0
    runs = client.search_runs(
        [experiment.experiment_id],
        filter_string="tags.step = 'train'",
        order_by=["attributes.start_time DESC"],
        max_results=args.limit,
    )
    versions: dict[str, str] = {}
    try:
        for version in client.search_model_versions(f"name = '{args.model_name}'"):
            versions[str(version.run_id)] = str(version.version)
    except mlflow.exceptions.MlflowException:
        pass
    rows = [
        (
            time.strftime("%Y-%m-%d %H:%M", time.localtime(run.info.start_time / 1000)),
            run.info.run_id[:12],
            run.data.params.get("data_version", "?").split(":", 1)[-1][:12],
            f"{run.data.metrics['test_auprc']:.4f}" if "test_auprc" in run.data.metrics else "-",
            _decision(run.data.tags),
            versions.get(run.info.run_id, "-"),
        )
        for run in runs
    ]
    header = ("started", "run", "data", "AUPRC", "decision", "version")
    widths = [max(len(r[i]) for r in [header, *rows]) for i in range(len(header))]
    for row in [header, *rows]:
        print("  ".join(cell.ljust(width) for cell, width in zip(row, widths, strict=True)).rstrip(), file=out)
    print(f"{len(rows)} run(s) in experiment {args.experiment!r} ({uri})", file=out)
    return 0
