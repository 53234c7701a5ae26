"""Shared fixtures: small synthetic data, and a real gcp-storage-emulator server on 127.0.0.1."""

from __future__ import annotations

import os
import socket
from collections.abc import Iterator

import pandas as pd
import pytest

from fraud_detection import synth


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@pytest.fixture(scope="session")
def small_frame() -> pd.DataFrame:
    """40,000 synthetic rows: enough fraud in every window, generated in well under a second."""
    return synth.generate(synth.SyntheticConfig(n_rows=40_000, seed=7))


@pytest.fixture(scope="session")
def gcs_bucket() -> Iterator[str]:
    """A bucket on a real gcp-storage-emulator server; STORAGE_EMULATOR_HOST points at it for the session."""
    from gcp_storage_emulator.server import create_server

    port = free_port()
    server = create_server("127.0.0.1", port, in_memory=True, default_bucket="fraud-test")
    server.start()
    previous = os.environ.get("STORAGE_EMULATOR_HOST")
    os.environ["STORAGE_EMULATOR_HOST"] = f"http://127.0.0.1:{port}"
    try:
        yield "fraud-test"
    finally:
        server.stop()
        if previous is None:
            os.environ.pop("STORAGE_EMULATOR_HOST", None)
        else:
            os.environ["STORAGE_EMULATOR_HOST"] = previous
