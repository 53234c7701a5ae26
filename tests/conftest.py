"""Shared fixtures and helpers: small synthetic data, a real gcp-storage-emulator server on 127.0.0.1, the
``fraud`` command run as a user runs it, and the start and stop of server processes."""

from __future__ import annotations

import os
import socket
import subprocess
import sys
import time
import urllib.request
from collections.abc import Iterator, Mapping
from contextlib import contextmanager
from pathlib import Path

import pandas as pd
import pytest

from fraud_detection import synth

REPO = Path(__file__).resolve().parents[1]
FRAUD = (sys.executable, "-m", "cli.main")
"""The ``fraud`` command, as its console script runs it."""


def run_fraud(
    *args: str, env: Mapping[str, str] | None = None, timeout: float = 120
) -> subprocess.CompletedProcess[str]:
    """Run ``fraud *args`` in the repository with ``env`` (default: this process's), its output captured as text.

    The exit status is the caller's to check.
    """
    return subprocess.run(
        [*FRAUD, *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout, check=False
    )


def free_port() -> int:
    """A TCP port on 127.0.0.1 that was free a moment ago."""
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


def stop_process(process: subprocess.Popen, timeout: float = 20) -> None:
    """SIGTERM a server process and wait for it; SIGKILL it if it has not stopped within ``timeout`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait(timeout=10)


@contextmanager
def redis_server(tls: Path | None = None) -> Iterator[str]:
    """A real ``redis-server`` on a free port of 127.0.0.1 only, without persistence; yields its URL once it answers
    a ping, and stops it afterwards (the feature-store tests and ``benchmarks/bench_features.py``).

    With ``tls`` (a folder), it serves TLS only, with a server certificate for 127.0.0.1 signed by a CA made for the
    occasion; the URL is ``rediss://`` and the CA is ``tls / "ca.pem"``, as Memorystore's in-transit encryption."""
    import shutil

    import redis

    port = free_port()
    server = shutil.which("redis-server") or "/usr/bin/redis-server"
    listen = ["--port", str(port)]
    client_tls: dict[str, str] = {}
    if tls is not None:
        ca, cert, key = make_certificates(tls)
        listen = ["--port", "0", "--tls-port", str(port), "--tls-cert-file", str(cert), "--tls-key-file", str(key)]
        listen += ["--tls-ca-cert-file", str(ca), "--tls-auth-clients", "no"]
        client_tls = {"ssl": "true", "ssl_ca_certs": str(ca)}
    process = subprocess.Popen(
        [server, *listen, "--bind", "127.0.0.1", "--save", "", "--appendonly", "no"],
        stdout=subprocess.DEVNULL,
        stderr=subprocess.DEVNULL,
    )
    try:
        client = redis.Redis(host="127.0.0.1", port=port, **client_tls)  # type: ignore[arg-type]
        deadline = time.monotonic() + 20
        while True:
            try:
                client.ping()
                break
            except redis.exceptions.ConnectionError:
                if time.monotonic() > deadline or process.poll() is not None:
                    raise
                time.sleep(0.05)
        client.close()
        yield f"{'rediss' if tls is not None else 'redis'}://127.0.0.1:{port}/0"
    finally:
        stop_process(process)


def make_certificates(folder: Path, name: str = "ca") -> tuple[Path, Path, Path]:
    """A CA (``<name>.pem``) and a server certificate and key for IP 127.0.0.1 signed by it, written to ``folder``."""
    import datetime
    import ipaddress

    from cryptography import x509
    from cryptography.hazmat.primitives import hashes, serialization
    from cryptography.hazmat.primitives.asymmetric import ec
    from cryptography.x509.oid import NameOID

    folder.mkdir(parents=True, exist_ok=True)
    now = datetime.datetime.now(datetime.UTC)

    def issue(
        subject: str, key: ec.EllipticCurvePrivateKey, issuer: x509.Name, signer: ec.EllipticCurvePrivateKey, ca: bool
    ) -> x509.Certificate:
        builder = (
            x509.CertificateBuilder()
            .subject_name(x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, subject)]))
            .issuer_name(issuer)
            .public_key(key.public_key())
            .serial_number(x509.random_serial_number())
            .not_valid_before(now - datetime.timedelta(minutes=5))
            .not_valid_after(now + datetime.timedelta(days=1))
            .add_extension(x509.BasicConstraints(ca=ca, path_length=None), critical=True)
        )
        if not ca:
            builder = builder.add_extension(
                x509.SubjectAlternativeName([x509.IPAddress(ipaddress.ip_address("127.0.0.1"))]), critical=False
            )
        return builder.sign(signer, hashes.SHA256())

    ca_key, server_key = ec.generate_private_key(ec.SECP256R1()), ec.generate_private_key(ec.SECP256R1())
    ca_name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, f"{name} test CA")])
    ca_cert = issue(f"{name} test CA", ca_key, ca_name, ca_key, ca=True)
    server_cert = issue("127.0.0.1", server_key, ca_name, ca_key, ca=False)
    paths = folder / f"{name}.pem", folder / "server.pem", folder / "server.key"
    paths[0].write_bytes(ca_cert.public_bytes(serialization.Encoding.PEM))
    paths[1].write_bytes(server_cert.public_bytes(serialization.Encoding.PEM))
    paths[2].write_bytes(
        server_key.private_bytes(
            serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
        )
    )
    return paths


def wait_http(url: str, timeout: float = 120, process: subprocess.Popen | None = None, log: Path | None = None) -> None:
    """Poll ``url`` until it answers 200.

    Raises RuntimeError after ``timeout`` seconds, or as soon as ``process`` (the server behind ``url``) has
    exited; the message ends with the tail of ``log``, the server's output, when one is given.
    """

    def tail() -> str:
        return f":\n{log.read_text()[-3000:]}" if log is not None and log.exists() else ""

    deadline = time.monotonic() + timeout
    while True:
        if process is not None and process.poll() is not None:
            raise RuntimeError(f"{url}: the server exited with {process.returncode}{tail()}")
        try:
            with urllib.request.urlopen(url, timeout=2) as response:
                if response.status == 200:
                    return
        except OSError:
            pass
        if time.monotonic() > deadline:
            raise RuntimeError(f"{url} did not answer 200 within {timeout} s{tail()}")
        time.sleep(0.3)


def write_windows(config: synth.SyntheticConfig, folder: Path) -> dict[str, Path]:
    """Generate ``config``'s data, split it in time and write each window to ``folder/<window>.parquet``;
    the paths by window name (``train``, ``validation``, ``test``)."""
    from fraud_detection import data

    paths = {}
    for name, window in data.time_split(synth.generate(config)).items():
        paths[name] = folder / f"{name}.parquet"
        data.write_parquet(window, paths[name])
    return paths


@pytest.fixture(scope="session")
def small_frame() -> pd.DataFrame:
    """40,000 synthetic rows: enough fraud in every window, generated in well under a second."""
    return synth.generate(synth.SyntheticConfig(n_rows=40_000, seed=7))


def enforce_generation_preconditions() -> None:
    """Make the emulator answer uploads carrying ``ifGenerationMatch`` as Cloud Storage does.

    gcp-storage-emulator ignores the parameter. Cloud Storage rejects such an upload with 412 Precondition Failed
    when the object's live generation differs from the one given (0: when the object exists at all). This wraps
    the emulator's upload handler with exactly that check, in the emulator's own single request thread, so a
    compare-and-set on ``gs://`` meets a server that enforces it.
    """
    from http import HTTPStatus

    from gcp_storage_emulator import server as emulator
    from gcp_storage_emulator.exceptions import NotFound
    from gcp_storage_emulator.handlers import objects

    upload = objects.insert
    if getattr(upload, "enforces_preconditions", False):
        return

    def insert(request, response, storage, *args, **kwargs):  # type: ignore[no-untyped-def]
        wanted = request.query.get("ifGenerationMatch")
        if wanted and "upload_id" not in request.query:
            body = request.data if isinstance(request.data, dict) else {}
            name = (request.query.get("name") or [None])[0] or body.get("meta", body).get("name")
            try:
                live = int(storage.get_file_obj(request.params["bucket_name"], name)["generation"])
            except NotFound:
                live = 0
            if live != int(wanted[0]):
                response.status = HTTPStatus.PRECONDITION_FAILED
                response.json(
                    {
                        "error": {
                            "code": 412,
                            "message": "At least one of the pre-conditions you specified did not hold.",
                        }
                    }
                )
                return None
        return upload(request, response, storage, *args, **kwargs)

    insert.enforces_preconditions = True  # type: ignore[attr-defined]
    objects.insert = insert
    for _, handlers in emulator.HANDLERS:
        for method, handler in list(handlers.items()):
            if handler is upload:
                handlers[method] = insert


@pytest.fixture(scope="session")
def gcs_bucket() -> Iterator[str]:
    """A bucket on a real gcp-storage-emulator server (generation preconditions enforced, see
    :func:`enforce_generation_preconditions`); STORAGE_EMULATOR_HOST points at it for the session."""
    from gcp_storage_emulator.server import create_server

    enforce_generation_preconditions()

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
