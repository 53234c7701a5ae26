"""The stream scorer's command line: ``python -m streaming [options]``; ``fraud stream`` uses the same code.

Every option overrides the matching ``FRAUD_*`` setting (:class:`streaming.settings.StreamSettings`), as with
the model server (:mod:`serving.main`). The process serves Prometheus ``/metrics`` on ``host:port``, writes the
server's structured logs, and stops cleanly on SIGINT/SIGTERM (the current batch is finished and committed).
"""

from __future__ import annotations

import argparse
import signal
import threading
from collections.abc import Mapping, Sequence
from typing import Any

from fraud_detection.setting_options import add_setting_options
from serving.settings import FLAGS, build_settings, settings_or_exit
from streaming.settings import StreamSettings

OPTIONS = (
    "model_uri",
    "model_name",
    "host",
    "port",
    "bootstrap_servers",
    "input_topic",
    "output_topic",
    "dead_letter_topic",
    "labels_topic",
    "prediction_log_bootstrap_servers",
    "prediction_log_topic",
    "group_id",
    "batch_size",
    "tracing_exporter",
    "otlp_endpoint",
    "log_level",
)
"""The settings a command-line option can set."""


BROKER_OPTIONS = ("bootstrap_servers", "input_topic", "output_topic", "dead_letter_topic")
"""The settings ``fraud stream topics`` and ``produce`` also take after their own name."""


def add_options(parser: argparse.ArgumentParser, names: Sequence[str] = OPTIONS, default: Any = None) -> None:
    """The scorer's options (``names`` of :data:`OPTIONS`), defaulting to ``default`` (None: the environment
    decides)."""
    add_setting_options(parser, StreamSettings, names, default, flags=FLAGS)


def settings_from_args(args: argparse.Namespace, fallbacks: Mapping[str, Any] | None = None) -> StreamSettings:
    """Options given, over ``FRAUD_*`` variables, over ``fallbacks``, over the settings' defaults."""
    return build_settings(StreamSettings, OPTIONS, args, fallbacks)


def run(settings: StreamSettings) -> int:
    """Consume and score until SIGINT/SIGTERM; the exit code."""
    from prometheus_client import start_http_server

    from serving import telemetry
    from streaming.consumer import StreamScorer

    telemetry.configure_logging(settings)
    provider = telemetry.configure_tracing(settings)
    stop = threading.Event()

    def on_signal(signum: int, frame: Any) -> None:
        stop.set()

    signal.signal(signal.SIGTERM, on_signal)
    signal.signal(signal.SIGINT, on_signal)
    server, thread = start_http_server(settings.port, addr=settings.host)
    try:
        return StreamScorer(settings).run(stop)
    finally:
        server.shutdown()
        thread.join(5)
        if provider is not None:
            provider.shutdown()


def main(argv: Sequence[str] | None = None) -> int:
    """``python -m streaming``: parse the options, build the settings, consume."""
    parser = argparse.ArgumentParser(prog="python -m streaming", description="The fraud stream scorer (Kafka).")
    add_options(parser)
    args = parser.parse_args(argv)
    return run(settings_or_exit(lambda: settings_from_args(args), parser.prog))
