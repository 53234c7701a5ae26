"""librdkafka plumbing shared by the scorer and ``fraud stream``'s helpers: its log lines and a reachability check.

librdkafka writes its own log lines to stderr (one per failed connection attempt, many a second with no broker);
every client made here sends them through the Python logger :data:`LOGGER` instead, so they take the process's
log format and level like any other line.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from typing import Any

LOGGER = "streaming.librdkafka"
"""The Python logger librdkafka's log lines go to."""

REACH_SECONDS = 5.0
"""How long :func:`broker_problem` waits for a broker to answer."""


def logged(config: Mapping[str, Any]) -> dict[str, Any]:
    """``config`` with librdkafka's log lines routed to the :data:`LOGGER` logger."""
    return {"logger": logging.getLogger(LOGGER), **config}


def broker_problem(config: Mapping[str, Any], timeout: float = REACH_SECONDS) -> str | None:
    """None when a broker of ``config['bootstrap.servers']`` answers within ``timeout`` seconds, else what failed.

    The check asks for the cluster's metadata with librdkafka's own logging off (its connection errors are the
    answer here, not news).
    """
    from confluent_kafka import KafkaException
    from confluent_kafka.admin import AdminClient

    quiet: dict[str, Any] = {**config, "log_level": 0, "logger": logging.getLogger(LOGGER)}
    admin = AdminClient(quiet)
    try:
        admin.list_topics(timeout=timeout)
    except KafkaException as error:
        reason = error.args[0].str() if error.args and hasattr(error.args[0], "str") else str(error)
        return f"no Kafka broker answers at {config.get('bootstrap.servers')} within {timeout:g}s ({reason})"
    return None
