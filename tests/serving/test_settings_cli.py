"""Settings from the environment, command-line overrides, ``fraud serve`` = ``python -m serving``, sample requests."""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import time
from pathlib import Path

import pytest

from cli.main import build_parser
from cli.serve import request_for, run_serve, sample_rows
from fraud_detection.schema import FEATURES
from fraud_detection.settings import Settings
from serving.main import add_options, settings_from_args
from serving.settings import ServingSettings
from tests.conftest import FRAUD, free_port, run_fraud, stop_process, wait_http
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


def server_args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser()
    add_options(parser)
    return parser.parse_args(argv)


def test_options_override_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_PORT", "9000")
    monkeypatch.setenv("FRAUD_MODEL_NAME", "from-env")
    settings = settings_from_args(server_args(["--port", "9100", "--host", "127.0.0.1"]))
    assert (settings.port, settings.host, settings.model_name) == (9100, "127.0.0.1", "from-env")


def test_fallbacks_come_after_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_HOST", "10.1.2.3")
    fallbacks = {"host": "127.0.0.1", "model_uri": "/local/champion"}
    settings = settings_from_args(server_args([]), fallbacks)
    assert (settings.host, settings.model_uri, settings.port) == ("10.1.2.3", "/local/champion", 8080)
    assert settings_from_args(server_args(["--host", "::1"]), fallbacks).host == "::1"


def fraud_serve_settings(monkeypatch: pytest.MonkeyPatch, argv: list[str], tmp_path: Path) -> ServingSettings:
    """The settings ``fraud serve ARGV`` would run the server with (the server itself is not started, and the
    model directory is not looked for)."""
    served: list[ServingSettings] = []

    def serve(settings: ServingSettings) -> int:
        served.append(settings)
        return 0

    monkeypatch.setattr("cli.serve.serve", serve)
    monkeypatch.setattr("cli.serve.champion_problem", lambda uri: None)
    monkeypatch.setenv("FRAUD_HOME", str(tmp_path))
    args = build_parser().parse_args(["serve", *argv])
    assert args.handler is run_serve
    assert args.handler(args, Settings()) == 0
    return served[0]


def test_fraud_serve_honours_fraud_host_and_port(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FRAUD_HOST", "10.0.0.5")
    monkeypatch.setenv("FRAUD_PORT", "9123")
    monkeypatch.setenv("FRAUD_WORKERS", "2")
    settings = fraud_serve_settings(monkeypatch, [], tmp_path)
    assert (settings.host, settings.port, settings.workers) == ("10.0.0.5", 9123, 2)
    assert settings.model_uri == str(Settings().serving_dir)


def test_fraud_serve_flags_override_the_environment(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    monkeypatch.setenv("FRAUD_PORT", "9123")
    monkeypatch.setenv("FRAUD_MODEL_URI", "gs://bucket/champion")
    settings = fraud_serve_settings(monkeypatch, ["--port", "9200", "--model-uri", "/models/x"], tmp_path)
    assert (settings.port, settings.model_uri, settings.host) == (9200, "/models/x", "127.0.0.1")


def test_settings_round_trip_through_the_environment(monkeypatch: pytest.MonkeyPatch) -> None:
    settings = ServingSettings(model_uri="/models/x", port=8181, otlp_google_auth=True, gcp_project="p")
    for key, value in settings.to_env().items():
        monkeypatch.setenv(key, value)
    assert ServingSettings() == settings


def test_fraud_cli_registration() -> None:
    serve = build_parser().parse_args(["serve", "--port", "9001"])
    assert (serve.port, serve.host, serve.model_uri) == (9001, None, None)
    assert serve.handler.__name__ == "run_serve"
    predict = build_parser().parse_args(["predict", "--protocol", "v2"])
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
    """``fraud serve`` listening where FRAUD_HOST/FRAUD_PORT say, then ``fraud predict`` in each protocol."""
    port = free_port()
    log = (tmp_path / "serve.log").open("w")
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.update({"FRAUD_HOME": str(tmp_path / "home"), "FRAUD_LOAD_RETRY_SECONDS": "1"})
    serve = subprocess.Popen(
        [*FRAUD, "serve", "--model-uri", str(model_dir)],
        cwd=REPO,
        env={**env, "FRAUD_HOST": "127.0.0.1", "FRAUD_PORT": str(port)},
        stdout=log,
        stderr=subprocess.STDOUT,
    )
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/v2/health/ready", START_TIMEOUT, serve, tmp_path / "serve.log")
        for protocol in ("v1", "v2", "flat"):
            done = run_fraud("predict", "--url", url, "--protocol", protocol, env=env, timeout=60)
            assert done.returncode == 0, done.stderr
            answer = json.loads(done.stdout)
            assert answer["model_version"] == MODEL_VERSION, answer
        wrong = run_fraud("predict", "--url", url, "--model-name", "other", env=env, timeout=60)
        assert wrong.returncode == 1 and "HTTP 404" in wrong.stderr
    finally:
        stop_process(serve)
        log.close()
    # stdout was a file, not a terminal: Cloud Logging JSON, one object per line
    lines = [line for line in (tmp_path / "serve.log").read_text().splitlines() if line.strip()]
    records = [json.loads(line) for line in lines]
    assert any(r.get("message", "").startswith("prediction ") for r in records)
    assert all("severity" in r for r in records)


def test_serve_without_a_champion_says_to_run_the_pipeline_first(tmp_path: Path) -> None:
    """A fresh FRAUD_HOME has no champion: ``fraud serve`` says what to run and exits, rather than retrying."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.update({"FRAUD_HOME": str(tmp_path / "home"), "FRAUD_PORT": str(free_port())})
    started = time.monotonic()
    done = run_fraud("serve", env=env, timeout=30)
    assert time.monotonic() - started < 15
    assert done.returncode == 1
    lines = done.stderr.splitlines()
    assert len(lines) == 1 and "fraud run" in lines[0] and "make run" in lines[0], done.stderr
    assert str(tmp_path / "home" / "serving" / "champion") in lines[0]
