"""``fraud serve`` and ``fraud predict``: start the model server locally, send it a sample request.

``fraud serve`` is ``python -m serving`` (the same options, settings and code: :mod:`serving.main`) with two
local fallbacks for what neither an option nor a ``FRAUD_*`` variable sets: the local champion folder as
the model and 127.0.0.1 as the address. Unlike the container's server, which waits (retrying) for KServe to
mount the model, ``fraud serve`` refuses at once a local model directory that is not there yet, and says how
to make one.
"""

from __future__ import annotations

import argparse
import json
import sys
import urllib.error
import urllib.request
from pathlib import Path
from typing import Any

from cli.common import command
from serving.main import add_options, serve, settings_from_args
from serving.settings import settings_or_exit

DEFAULT_MODEL_URI = ".fraud/serving/champion"
LOCAL_HOST = "127.0.0.1"
DEFAULT_URL = "http://127.0.0.1:8080"


def add_serve_parser(subparsers: Any) -> None:
    """Register ``serve``: the KServe model server on localhost against the local champion."""
    parser = command(
        subparsers,
        "serve",
        help="serve the champion model with KServe (V1, V2 and flat JSON on one port)",
        description="Options override FRAUD_* variables; without either, the local champion on 127.0.0.1.",
    )
    add_options(parser)
    parser.set_defaults(handler=run_serve)


def local_fallbacks(settings: Any) -> dict[str, str]:
    """What ``fraud serve`` and ``fraud stream`` use when neither an option nor a variable says: the local
    champion (from the ``fraud`` CLI's ``settings``) on 127.0.0.1."""
    serving_dir = getattr(settings, "serving_dir", None)
    return {"model_uri": str(serving_dir) if serving_dir is not None else DEFAULT_MODEL_URI, "host": LOCAL_HOST}


def champion_problem(model_uri: str) -> str | None:
    """Why a local ``model_uri`` cannot be served yet (no model directory there), or None (also for ``gs://``)."""
    from fraud_detection import storage
    from fraud_detection.modeldir import METADATA_FILE

    if storage.is_gcs(model_uri) or (Path(model_uri) / METADATA_FILE).is_file():
        return None
    return (
        f"no model at {model_uri} ({METADATA_FILE} is missing): run `.venv/bin/fraud run` (or `make run`) "
        "first to train and promote a champion, or pass --model-uri"
    )


def run_serve(args: argparse.Namespace, settings: Any = None) -> int:
    """Handler of ``serve``. ``settings`` (the ``fraud`` CLI's) supplies the local champion directory.

    Exits with 1 at once when the model directory is local and missing (``python -m serving`` retries instead).
    """
    # short lines on a terminal; Cloud Logging JSON when piped or collected
    fallbacks = {**local_fallbacks(settings), "log_format": "auto"}
    serving = settings_or_exit(lambda: settings_from_args(args, fallbacks=fallbacks), "fraud serve")
    if problem := champion_problem(serving.model_uri):
        print(f"fraud serve: error: {problem}", file=sys.stderr)
        return 1
    return serve(serving)


def add_predict_parser(subparsers: Any) -> None:
    """Register ``predict``: send a sample request to a running server and print the answer."""
    parser = command(
        subparsers,
        "predict",
        help="send sample transactions to a running model server and print the answer",
    )
    parser.add_argument("--url", default=DEFAULT_URL, help="server base URL")
    parser.add_argument("--model-name", default="fraud-detector")
    parser.add_argument(
        "--protocol", choices=["v1", "v2", "flat"], default="v1", help="request body: V1 instances, V2 tensor, flat"
    )
    parser.add_argument("--explain", action="store_true", help="ask for per-feature contributions (V1 and flat)")
    parser.add_argument("--timeout", type=float, default=10.0, help="seconds to wait for the answer")
    parser.set_defaults(handler=run_predict)


def sample_rows(n_legit: int = 1, n_fraud: int = 1, seed: int = 11) -> list[dict[str, float]]:
    """Real synthetic transactions (legitimate first, then fraud) as objects of the 29 named features."""
    from fraud_detection import synth
    from fraud_detection.schema import FEATURES, LABEL

    frame = synth.generate(synth.SyntheticConfig(n_rows=20_000, seed=seed))
    legit = frame[frame[LABEL] == 0].head(n_legit)
    fraud = frame[frame[LABEL] == 1].head(n_fraud)
    rows = [*legit.to_dict("records"), *fraud.to_dict("records")]
    return [{name: round(float(row[name]), 6) for name in FEATURES} for row in rows]


def request_for(protocol: str, model_name: str, rows: list[dict[str, float]], explain: bool = False) -> tuple[str, Any]:
    """The ``(path, body)`` of a sample request in the chosen protocol."""
    from fraud_detection.schema import FEATURES

    verb = "explain" if explain else "predict"
    if protocol == "flat":
        return f"/{verb}", rows[0]
    if protocol == "v2":
        if explain:
            raise ValueError("explanations are served on the V1 endpoint only (use --protocol v1 or flat)")
        data = [[row[name] for name in FEATURES] for row in rows]
        tensor = {"name": "transactions", "shape": [len(rows), len(FEATURES)], "datatype": "FP32", "data": data}
        return f"/v2/models/{model_name}/infer", {"inputs": [tensor]}
    return f"/v1/models/{model_name}:{verb}", {"instances": rows}


def run_predict(args: argparse.Namespace, settings: Any = None) -> int:
    """Handler of ``predict``: prints the server's JSON answer; exit code 1 on an error answer."""
    try:
        path, body = request_for(args.protocol, args.model_name, sample_rows(), args.explain)
    except ValueError as error:
        print(f"error: {error}", file=sys.stderr)
        return 2
    request = urllib.request.Request(
        args.url.rstrip("/") + path,
        data=json.dumps(body).encode(),
        headers={"Content-Type": "application/json"},
        method="POST",
    )
    print(f"POST {request.full_url}", file=sys.stderr)
    try:
        with urllib.request.urlopen(request, timeout=args.timeout) as response:
            print(json.dumps(json.loads(response.read()), indent=2))
            return 0
    except urllib.error.HTTPError as error:
        print(f"HTTP {error.code}: {error.read().decode('utf-8', 'replace')}", file=sys.stderr)
    except (urllib.error.URLError, TimeoutError, ConnectionError) as error:
        print(f"cannot reach {args.url}: {error} (is `fraud serve` running?)", file=sys.stderr)
    return 1
