"""Settings from the environment, command-line overrides, and the CLI's sample requests."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests

from cli.serve import register, request_for, sample_rows
from fraud_detection.schema import FEATURES
from serving.server import parser, settings_from_args, settings_to_env
from serving.settings import ServingSettings
from tests.conftest import free_port
from tests.serving.conftest import MODEL_VERSION, REPO, START_TIMEOUT


def test_settings_read_the_fraud_prefix(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_MODEL_URI", "gs://bucket/champion")
    monkeypatch.setenv("FRAUD_MAX_BATCH_ROWS", "123")
    monkeypatch.setenv("FRAUD_TRACING_EXPORTER", "console")
    settings = ServingSettings()
    assert (settings.model_uri, settings.max_batch_rows, settings.tracing_exporter) == (
        "gs://bucket/champion",
        123,
        "console",
    )


def test_bad_settings_are_refused(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_TRACING_EXPORTER", "jaeger")
    with pytest.raises(ValueError, match="tracing_exporter"):
        ServingSettings()


def test_options_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_PORT", "9000")
    monkeypatch.setenv("FRAUD_MODEL_NAME", "from-env")
    settings = settings_from_args(parser().parse_args(["--port", "9100", "--host", "127.0.0.1"]))
    assert (settings.port, settings.host, settings.model_name) == (9100, "127.0.0.1", "from-env")


def test_settings_round_trip_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ServingSettings(model_uri="/models/x", port=8181, otlp_google_auth=True, gcp_project="p")
    for key, value in settings_to_env(settings).items():
        monkeypatch.setenv(key, value)
    assert ServingSettings() == settings


def test_fraud_cli_registration() -> None:
    cli = argparse.ArgumentParser(prog="fraud")
    register(cli.add_subparsers(dest="command"))
    serve = cli.parse_args(["serve", "--port", "9001"])
    assert (serve.port, serve.host, serve.model_uri) == (9001, "127.0.0.1", None)
    assert serve.handler.__name__ == "run_serve"
    predict = cli.parse_args(["predict", "--protocol", "v2"])
    assert predict.handler.__name__ == "run_predict"


def test_sample_requests_hold_real_rows() -> None:
    rows = sample_rows()
    assert len(rows) == 2 and all(list(row) == list(FEATURES) for row in rows)
    path, body = request_for("v2", "m", rows)
    assert path == "/v2/models/m/infer" and body["inputs"][0]["shape"] == [2, 29]
    assert request_for("flat", "m", rows) == ("/predict", rows[0])
    assert request_for("v1", "m", rows, explain=True)[0] == "/v1/models/m:explain"
    with pytest.raises(ValueError, match="V1 endpoint only"):
        request_for("v2", "m", rows, explain=True)


@pytest.mark.slow
def test_serve_then_predict_commands(tmp_path: Path, model_dir: Path) -> None:
    """``python -m serving.cli serve`` on 127.0.0.1, then ``predict`` in each protocol against it."""
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    serve = subprocess.Popen(
        [sys.executable, "-m", "serving.cli", "serve", "--model-uri", str(model_dir), "--port", str(port)],
        cwd=REPO,
        env=env,
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    try:
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            assert serve.poll() is None, (tmp_path / "serve.log").read_text()
            try:
                if requests.get(f"http://127.0.0.1:{port}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            time.sleep(0.3)
        else:
            raise AssertionError("server not ready:\n" + (tmp_path / "serve.log").read_text()[-3000:])
        url = f"http://127.0.0.1:{port}"
        for protocol in ("v1", "v2", "flat"):
            done = subprocess.run(
                [sys.executable, "-m", "serving.cli", "predict", "--url", url, "--protocol", protocol],
                cwd=REPO,
                env=env,
                capture_output=True,
                text=True,
                timeout=60,
            )
            assert done.returncode == 0, done.stderr
            answer = json.loads(done.stdout)
            assert answer["model_version"] == MODEL_VERSION, answer
        wrong = subprocess.run(
            [sys.executable, "-m", "serving.cli", "predict", "--url", url, "--model-name", "other"],
            cwd=REPO,
            env=env,
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert wrong.returncode == 1 and "HTTP 404" in wrong.stderr
    finally:
        serve.terminate()
        serve.wait(timeout=20)
        log.close()
