"""The prediction log's sender process on a real Tansu broker: the records it sends are the encoder's, a sender
killed with -9 costs only the records it had not reported (counted as undelivered, exactly) and a new one takes
over, and a sender whose parent dies ends by itself."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import psutil
import pytest

from fraud_detection.monitoring import records
from serving import log_sender
from serving.log_records import messages
from serving.prediction_log import LIBRDKAFKA_LOGGER, RESTART_SECONDS, PredictionLog
from tests.conftest import free_port
from tests.serving.test_prediction_log import WHERE, counter, scored
from tests.streaming.broker import Broker, read_topic

REPO = Path(__file__).resolve().parents[2]


@pytest.fixture(scope="module")
def broker(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Broker]:
    with Broker(tmp_path_factory.mktemp("tansu") / "tansu.log") as running:
        yield running


def _totals() -> tuple[float, float, float]:
    return (
        counter("fraud_prediction_log_sent_total"),
        counter("fraud_prediction_log_dropped_total"),
        counter("fraud_prediction_log_dropped_total", reason="undelivered"),
    )


def _wait(condition: object, seconds: float = 30.0) -> None:
    deadline = time.monotonic() + seconds
    while not condition() and time.monotonic() < deadline:  # type: ignore[operator]
        time.sleep(0.05)


def test_the_sender_sends_what_the_encoder_gives(broker: Broker) -> None:
    broker.create_topics("sender-bytes")
    log = PredictionLog(broker.config(), "sender-bytes", WHERE, 1_000, timeout_seconds=10)
    log.start()
    batches = [scored(3, ids=(f"a{i}", f"b{i}", f"c{i}")) for i in range(5)]
    for batch in batches:
        log.submit(batch)
    log.close(timeout=10)
    found = read_topic(broker.config(), "sender-bytes", 15)
    by_id = {item.id: item for item in (records.decode(*m) for m in found)}
    expected = [records.decode(*m) for batch in batches for m in messages(batch, WHERE)]
    assert [by_id[item.id] for item in expected] == expected


def test_a_killed_sender_costs_only_its_unreported_records_and_another_takes_over(broker: Broker) -> None:
    broker.create_topics("sender-kill")
    sent0, dropped0, undelivered0 = _totals()
    log = PredictionLog(broker.config(), "sender-kill", WHERE, 10_000, timeout_seconds=10)
    log.start()
    try:
        first = log._sender
        assert first is not None
        for i in range(200):
            log.submit(scored(1, ids=(f"one-{i}",)))
        _wait(lambda: counter("fraud_prediction_log_sent_total") - sent0 >= 200)
        for i in range(300):
            log.submit(scored(1, ids=(f"two-{i}",)))
        assert first.pid is not None
        os.kill(first.pid, signal.SIGKILL)  # some of the 300 may be on their way, some not yet handed over
        _wait(lambda: log._sender is None)  # the thread noticed
        time.sleep(RESTART_SECONDS)  # the next round may start another
        for i in range(100):
            log.submit(scored(1, ids=(f"three-{i}",)))
        _wait(lambda: log._sender is not None)
    finally:
        log.close(timeout=10)
    sent1, dropped1, undelivered1 = _totals()
    assert (sent1 - sent0) + (dropped1 - dropped0) == 600  # every row ends as exactly one sent or one dropped
    assert dropped1 - dropped0 == undelivered1 - undelivered0  # and only as undelivered
    assert sent1 - sent0 >= 300  # the first 200 and the last 100 at least
    ids = {key.decode() for key, _, _ in read_topic(broker.config(), "sender-kill", int(sent1 - sent0))}
    assert {f"three-{i}" for i in range(100)} <= ids
    assert not first.is_alive()


def test_a_sender_that_cannot_start_is_not_respawned_every_round(monkeypatch: pytest.MonkeyPatch) -> None:
    starts: list[float] = []
    real_start = log_sender.start

    def counted(*args: object, **kwargs: object) -> object:
        starts.append(time.monotonic())
        return real_start(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(log_sender, "start", counted)
    _, dropped0, undelivered0 = _totals()
    config = {"bootstrap.servers": f"127.0.0.1:{free_port()}", "no.such.property": "1"}  # librdkafka refuses it
    log = PredictionLog(config, "t", WHERE, 1_000, timeout_seconds=1.0)
    log.start()
    try:
        for _ in range(30):  # 3 s of rounds with work in each
            log.submit(scored(1))
            time.sleep(0.1)
    finally:
        log.close(timeout=1)
    _, dropped1, undelivered1 = _totals()
    assert 1 <= len(starts) <= 2, f"{len(starts)} senders started in 3 s"
    assert dropped1 - dropped0 == undelivered1 - undelivered0 == 30


def test_librdkafka_lines_reach_the_parents_logger(caplog: pytest.LogCaptureFixture) -> None:
    caplog.set_level(logging.INFO, logger=LIBRDKAFKA_LOGGER)
    log = PredictionLog({"bootstrap.servers": f"127.0.0.1:{free_port()}"}, "t", WHERE, 10, timeout_seconds=1.0)
    log.start()
    try:
        log.submit(scored(1))
        _wait(lambda: any(r.name == LIBRDKAFKA_LOGGER for r in caplog.records))
    finally:
        log.close(timeout=1)
    lines = [r.getMessage() for r in caplog.records if r.name == LIBRDKAFKA_LOGGER]
    assert any("Connection refused" in line or "Connect to" in line for line in lines), lines


def test_a_run_the_sender_cannot_encode_is_dropped_counted_and_said_in_the_servers_log(
    caplog: pytest.LogCaptureFixture,
) -> None:
    caplog.set_level(logging.ERROR, logger="serving.prediction_log")
    before = counter("fraud_prediction_log_dropped_total", reason="unencodable")
    odd = scored(2, ids=(1, 2))  # type: ignore[arg-type]  # the right count, but ids that are not text
    log = PredictionLog({"bootstrap.servers": f"127.0.0.1:{free_port()}"}, "t", WHERE, 10, timeout_seconds=1.0)
    log.start()
    try:
        log.submit(odd)
        _wait(lambda: counter("fraud_prediction_log_dropped_total", reason="unencodable") - before >= 2)
        _wait(lambda: any("not encoded" in r.getMessage() for r in caplog.records))
    finally:
        log.close(timeout=1)
    assert counter("fraud_prediction_log_dropped_total", reason="unencodable") - before == 2
    lines = [r for r in caplog.records if "not encoded" in r.getMessage()]
    assert lines and lines[0].name == "serving.prediction_log" and lines[0].levelno == logging.ERROR


def test_a_sender_whose_parent_dies_ends_by_itself(tmp_path: Path) -> None:
    script = tmp_path / "parent.py"
    script.write_text(
        "import os, sys, time\n"
        f"sys.path.insert(0, {str(REPO)!r})\n"
        "from serving.log_records import Source\n"
        "from serving.prediction_log import PredictionLog\n"
        "if __name__ == '__main__':\n"  # the sender is spawned: it imports this file again
        "    log = PredictionLog({'bootstrap.servers': '127.0.0.1:1'}, 't', Source('s', 'n'), 10, 1.0)\n"
        "    log.start()\n"
        "    time.sleep(1.0)\n"
        "    print(log._sender.pid, flush=True)\n"
        "    os._exit(0)\n"  # no close, no exit handlers: as if killed
    )
    done = subprocess.run([sys.executable, str(script)], capture_output=True, text=True, timeout=60, check=True)
    pid = int(done.stdout.split()[-1])
    deadline = time.monotonic() + 20
    while psutil.pid_exists(pid) and psutil.Process(pid).status() != psutil.STATUS_ZOMBIE:
        assert time.monotonic() < deadline, f"sender {pid} still running 20 s after its parent died"
        time.sleep(0.1)
