"""``fraud stream`` as a new user meets it: the project's own data files, a broker that is not there, options
given before or after the subcommand."""

from __future__ import annotations

import json
import subprocess
import time
from pathlib import Path

import pytest

from cli.main import build_parser
from fraud_detection.schema import DEFAULT_SENSITIVE_COLUMN, FEATURES
from tests.conftest import FRAUD, free_port, run_fraud
from tests.serving.conftest import REPO
from tests.streaming.broker import Broker, read_topic


@pytest.mark.parametrize("command", [["topics"], ["produce"]])
def test_broker_options_are_taken_before_and_after_the_subcommand(command: list[str]) -> None:
    parser = build_parser()
    before = parser.parse_args(["stream", "--bootstrap-servers", "h:1", "--input-topic", "in", *command])
    after = parser.parse_args(["stream", *command, "--bootstrap-servers", "h:1", "--input-topic", "in"])
    for args in (before, after):
        assert (args.bootstrap_servers, args.input_topic) == ("h:1", "in")
    assert parser.parse_args(["stream", *command]).bootstrap_servers is None  # not given: the environment decides


def test_the_scorer_takes_the_prediction_log_options(monkeypatch: pytest.MonkeyPatch) -> None:
    from streaming.main import settings_from_args

    monkeypatch.setenv("FRAUD_PREDICTION_LOG_TOPIC", "from-env")
    args = build_parser().parse_args(["stream", "--prediction-log-bootstrap-servers", "k:9092"])
    settings = settings_from_args(args)
    assert (settings.prediction_log_bootstrap_servers, settings.prediction_log_topic) == ("k:9092", "from-env")
    args = build_parser().parse_args(["stream", "--prediction-log-topic", "given"])
    assert settings_from_args(args).prediction_log_topic == "given"


@pytest.mark.slow
@pytest.mark.parametrize("command", [["topics"], ["produce", "--rows", "10"], []])
def test_a_command_without_a_broker_says_so_in_one_line_and_exits(
    command: list[str], model_dir: Path, tmp_path: Path
) -> None:
    address = f"127.0.0.1:{free_port()}"  # nothing listens there
    argv = [*FRAUD, "stream", "--bootstrap-servers", address, *command]
    if not command:  # the scorer, with a model to serve
        argv += ["--model-uri", str(model_dir), "--port", str(free_port())]
    env = {"PATH": "/usr/bin:/bin", "FRAUD_HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    started = time.monotonic()
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=30)
    seconds = time.monotonic() - started
    lines = (done.stdout + done.stderr).splitlines()
    assert done.returncode != 0
    assert seconds < 15, f"took {seconds:.1f}s"
    assert len(lines) <= 3, "\n".join(lines[:20])
    assert "Traceback" not in done.stderr
    assert f"no Kafka broker answers at {address}" in lines[-1] and "tansu" in lines[-1], lines


@pytest.mark.slow
@pytest.mark.parametrize("suffix", [".csv", ".parquet"])
def test_produce_sends_a_file_from_fraud_data_generate(suffix: str, tmp_path: Path) -> None:
    data = tmp_path / f"generated{suffix}"
    env = {"PATH": "/usr/bin:/bin", "FRAUD_HOME": str(tmp_path), "PYTHONPATH": str(REPO)}
    generate = [*FRAUD, "data", "generate", "--rows", "3000", "--output", str(data)]
    subprocess.run(generate, cwd=REPO, env=env, check=True, capture_output=True, timeout=120)
    with Broker(tmp_path / "tansu.log") as broker:
        topic = f"generated-{suffix[1:]}"
        broker.create_topics(topic, partitions=1)
        produce = ["produce", "--data", str(data), "--rows", "50", "--topic", topic]
        done = run_fraud("stream", "--bootstrap-servers", broker.bootstrap, *produce, env=env, timeout=120)
        assert done.returncode == 0, done.stderr
        assert "sent 50 transactions" in done.stdout
        sent = read_topic(broker.config(), topic, expected=50)
    assert len(sent) == 50
    values = [json.loads(value) for _, value, _ in sent]
    assert all(list(value) == list(FEATURES) for value in values)  # no label, time or fairness attribute
    assert DEFAULT_SENSITIVE_COLUMN not in values[0]
