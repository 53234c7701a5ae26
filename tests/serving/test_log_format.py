"""Readable local logs: ``fraud serve`` on a terminal prints short lines; Cloud Logging JSON stays the default of
``python -m serving`` (the image) and of any output that is not a terminal; ``--log-format`` / ``FRAUD_LOG_FORMAT``
chooses either."""

from __future__ import annotations

import io
import json
import logging
import os
import re
import select
import signal
import subprocess
import time
from collections.abc import Iterator
from pathlib import Path
from typing import TextIO

import pytest
import requests

from cli.serve import request_for, sample_rows
from serving import telemetry
from serving.settings import ServingSettings
from tests.conftest import free_port
from tests.serving.conftest import REPO, START_TIMEOUT
from tests.serving.test_settings_cli import FRAUD, fraud_serve_settings


@pytest.fixture()
def terminal() -> Iterator[TextIO]:
    """The writing end of a real pseudo-terminal (``isatty()`` is true)."""
    master, slave = os.openpty()
    stream = os.fdopen(slave, "w")
    try:
        yield stream
    finally:
        stream.close()
        os.close(master)


def test_json_is_the_default_even_on_a_terminal(terminal: TextIO) -> None:
    assert ServingSettings().log_format == "json"
    assert ServingSettings().resolved_log_format(terminal) == "json"


def test_auto_is_text_on_a_terminal_and_json_elsewhere(terminal: TextIO, tmp_path: Path) -> None:
    settings = ServingSettings(log_format="auto")
    assert settings.resolved_log_format(terminal) == "text"
    with (tmp_path / "out.log").open("w") as file:
        assert settings.resolved_log_format(file) == "json"


def test_an_explicit_setting_chooses_either(terminal: TextIO, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_LOG_FORMAT", "text")
    assert ServingSettings().resolved_log_format(io.StringIO()) == "text"
    monkeypatch.setenv("FRAUD_LOG_FORMAT", "json")
    assert ServingSettings().resolved_log_format(terminal) == "json"
    monkeypatch.setenv("FRAUD_LOG_FORMAT", "xml")
    with pytest.raises(ValueError, match="log_format"):
        ServingSettings()


def test_fraud_serve_uses_auto_unless_told(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    assert fraud_serve_settings(monkeypatch, [], tmp_path).log_format == "auto"
    assert fraud_serve_settings(monkeypatch, ["--log-format", "json"], tmp_path).log_format == "json"
    monkeypatch.setenv("FRAUD_LOG_FORMAT", "text")
    assert fraud_serve_settings(monkeypatch, [], tmp_path).log_format == "text"


def _log_one_prediction(settings: ServingSettings, monkeypatch: pytest.MonkeyPatch) -> str:
    out = io.StringIO()
    monkeypatch.setattr("sys.stdout", out)
    root = logging.getLogger()
    saved = root.handlers[:], root.level
    try:
        telemetry.configure_logging(settings)
        record = {"event": "prediction", "batch_size": 2, "flagged": 1, "max_score": 0.93, "latency_ms": 3.1}
        logging.getLogger("serving.prediction").info(
            "prediction /v1/models/fraud-detector:predict 200", extra={"json_fields": {**record, "model_version": "4"}}
        )
    finally:
        for handler in root.handlers:
            handler.flush()
        root.handlers, level = saved
        root.setLevel(level)
    return out.getvalue()


def test_text_lines_are_short_and_carry_the_key_fields(monkeypatch: pytest.MonkeyPatch) -> None:
    text = _log_one_prediction(ServingSettings(log_format="text"), monkeypatch)
    assert re.fullmatch(
        r"\d\d:\d\d:\d\d INFO +prediction /v1/models/fraud-detector:predict 200 "
        r"\(rows 2, flagged 1, max score 0\.93, 3\.1 ms, model v4\)\n",
        text,
    ), text
    records = [
        json.loads(line) for line in _log_one_prediction(ServingSettings(log_format="json"), monkeypatch).splitlines()
    ]
    (record,) = [r for r in records if r.get("message", "").startswith("prediction ")]
    assert record["severity"] == "INFO" and record["batch_size"] == 2


@pytest.mark.slow
def test_fraud_serve_on_a_terminal_prints_short_lines(model_dir: Path) -> None:
    port = free_port()
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.update({"FRAUD_LOAD_RETRY_SECONDS": "1", "PYTHONUNBUFFERED": "1"})
    master, slave = os.openpty()
    serve = subprocess.Popen(
        [*FRAUD, "serve", "--model-uri", str(model_dir), "--port", str(port)],
        cwd=REPO,
        env=env,
        stdin=subprocess.DEVNULL,
        stdout=slave,
        stderr=slave,
    )
    os.close(slave)
    output = b""

    def read_for(seconds: float) -> None:
        nonlocal output
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.2)
            if ready:
                try:
                    output += os.read(master, 65536)
                except OSError:
                    return

    try:
        url = f"http://127.0.0.1:{port}"
        deadline = time.monotonic() + START_TIMEOUT
        while time.monotonic() < deadline:
            read_for(0.3)
            assert serve.poll() is None, output.decode(errors="replace")
            try:
                if requests.get(f"{url}/v2/health/ready", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
        else:
            raise AssertionError("not ready:\n" + output.decode(errors="replace")[-3000:])
        path, body = request_for("v1", "fraud-detector", sample_rows())
        assert requests.post(url + path, json=body, timeout=10).status_code == 200
        read_for(2.0)
    finally:
        serve.send_signal(signal.SIGTERM)
        serve.wait(timeout=30)
        os.close(master)
    lines = [line for line in output.decode(errors="replace").splitlines() if line.strip()]
    assert lines, "fraud serve printed nothing"
    assert not [line for line in lines if line.lstrip().startswith("{")], "JSON on a terminal"
    assert any(re.match(r"\d\d:\d\d:\d\d INFO +serving model 'fraud-detector'", line) for line in lines), lines
    prediction = [line for line in lines if "prediction /v1/models/fraud-detector:predict 200" in line]
    assert prediction and "rows 2" in prediction[0] and len(prediction[0]) < 200, lines


@pytest.mark.parametrize("message", ["prediction /v1/models/fraud-detector:predict 200", {"event": "mapping"}])
def test_json_lines_hold_what_google_cloud_loggings_own_handler_writes(message: object) -> None:
    """Our handler encodes the line in one call; the fields and values must be the library handler's."""
    from google.cloud.logging_v2.handlers import StructuredLogHandler
    from opentelemetry import trace
    from opentelemetry.trace import NonRecordingSpan, SpanContext, TraceFlags

    from serving import jsonlog

    ours, theirs = jsonlog.structured_handler("my-project"), StructuredLogHandler(project_id="my-project")
    record = logging.LogRecord("serving.predictions", logging.WARNING, "/app/x.py", 12, message, None, None, "f")
    record.json_fields = {"event": "prediction", "batch_size": 2, "decisions": [0, 1], "severity": "ignored"}
    record.http_request = {"requestMethod": "POST", "status": 400, "latency": "0.001000s"}
    context = SpanContext(0x4BF92F3577B34DA6A3CE929D0E0E4736, 0x00F067AA0BA902B7, False, TraceFlags(1))
    try:
        with trace.use_span(NonRecordingSpan(context)):
            line = ours.format(record)
            assert theirs.filter(record)
            expected = theirs.format(record)
    finally:
        ours.close()
    assert json.loads(line) == json.loads(expected)
    assert (
        json.loads(line)["logging.googleapis.com/trace"]
        == "projects/my-project/traces/4bf92f3577b34da6a3ce929d0e0e4736"
    )
