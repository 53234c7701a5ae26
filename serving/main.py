"""The model server's command line: ``python -m serving [options]``; ``fraud serve`` uses the same code.

Every option overrides the matching ``FRAUD_*`` setting (:class:`serving.settings.ServingSettings`); what
no option gives comes from the environment, then from the caller's fallbacks (``fraud serve``: the local
champion on 127.0.0.1), then from the settings' defaults. This module imports neither KServe nor the app,
so registering the options costs nothing; :func:`serve` imports them.
"""

from __future__ import annotations

import argparse
import contextlib
import sys
from collections.abc import Iterator, Mapping, Sequence
from typing import Any

from fraud_detection.setting_options import add_setting_options
from serving.settings import FLAGS, ServingSettings, build_settings, settings_or_exit

OPTIONS = (
    "model_uri",
    "model_name",
    "host",
    "port",
    "workers",
    "tracing_exporter",
    "otlp_endpoint",
    "log_level",
    "log_format",
    "prediction_log_bootstrap_servers",
    "prediction_log_topic",
    "shadow_model_uri",
)
"""The settings a command-line option can set (``--model-uri`` for ``model_uri``, ``--tracing`` for the exporter,
``--prediction-log-bootstrap-servers``, ``--prediction-log-topic``, ``--shadow-model-uri``)."""


def add_options(parser: argparse.ArgumentParser) -> None:
    """The server's options (:data:`OPTIONS`), all defaulting to None (= not given, the environment decides)."""
    add_setting_options(parser, ServingSettings, OPTIONS, flags=FLAGS)


def settings_from_args(args: argparse.Namespace, fallbacks: Mapping[str, Any] | None = None) -> ServingSettings:
    """Options given, over ``FRAUD_*`` variables, over ``fallbacks``, over the settings' defaults."""
    return build_settings(ServingSettings, OPTIONS, args, fallbacks)


@contextlib.contextmanager
def _plain_argv() -> Iterator[None]:
    """Importing ``kserve`` parses ``sys.argv`` with KServe's own options: hide ours from it."""
    saved = sys.argv
    sys.argv = saved[:1] or ["serving"]
    try:
        yield
    finally:
        sys.argv = saved


BLAS_THREAD_VARIABLES = ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS")
"""Read by NumPy's BLAS when it loads: how many threads the MLP's matrix products may start."""


def serve(settings: ServingSettings) -> int:
    """Run the server until SIGINT/SIGTERM; the exit code.

    Before anything imports NumPy, its BLAS is held to ``predict_threads`` threads (unless the environment
    says otherwise), as XGBoost is: a BLAS that starts a thread per core in every worker spins against the
    other workers and requests on a busy node (measured: 42,000 against 346,000 MLP rows/s in 1,000-row
    batches on a loaded 2-core machine).
    """
    import os

    for name in BLAS_THREAD_VARIABLES:
        os.environ.setdefault(name, str(settings.predict_threads))
    with _plain_argv():
        from serving.server import run
    return run(settings)


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m serving``: parse the options, build the settings, serve."""
    parser = argparse.ArgumentParser(prog="python -m serving", description="The fraud model server (KServe).")
    add_options(parser)
    args = parser.parse_args(argv)
    return serve(settings_or_exit(lambda: settings_from_args(args), parser.prog))
