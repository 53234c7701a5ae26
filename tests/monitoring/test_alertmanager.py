"""A real Alertmanager (Debian's ``prometheus-alertmanager``) routes posted alerts to the controller with the bearer
token from its ``credentials_file``: a drift alert starts exactly one run, a degraded version rolls back, and a
route holding the wrong token moves nothing."""

from __future__ import annotations

import shutil
import subprocess
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests
import yaml

from fraud_detection import champion
from tests.conftest import free_port, stop_process
from tests.monitoring.loop_parts import Controller, serving_root

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus-alertmanager") is None, reason="make sysdeps installs it"),
]
WAIT = 30.0


@dataclass
class Loop:
    controller: Controller
    alertmanager: str
    root: Path


def _config(controller: Controller, wrong_token: Path) -> dict[str, object]:
    def receiver(name: str, token: Path) -> dict[str, object]:
        webhook = {
            "url": f"{controller.url}/alerts",
            "send_resolved": True,
            "http_config": {"authorization": {"type": "Bearer", "credentials_file": str(token)}},
        }
        return {"name": name, "webhook_configs": [webhook]}

    timing = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}
    return {
        "route": {
            "receiver": "controller",
            "group_by": ["alertname"],
            **timing,
            "routes": [{"receiver": "impostor", "matchers": ['via="impostor"'], **timing}],
        },
        "receivers": [receiver("controller", controller.token_file), receiver("impostor", wrong_token)],
    }


@pytest.fixture
def loop(tmp_path: Path, model_dir: Path) -> Iterator[Loop]:
    root = serving_root(tmp_path / "serving", model_dir)
    controller = Controller(tmp_path / "controller", root)
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token\n")
    (tmp_path / "alertmanager.yml").write_text(yaml.safe_dump(_config(controller, wrong)))
    port = free_port()
    log = (tmp_path / "alertmanager.log").open("w")
    process = subprocess.Popen(
        ["prometheus-alertmanager", f"--config.file={tmp_path / 'alertmanager.yml'}",
         f"--storage.path={tmp_path / 'alertmanager'}", f"--web.listen-address=127.0.0.1:{port}",
         "--cluster.listen-address="],
        stdout=log,
        stderr=subprocess.STDOUT,
    )  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    try:
        _wait(lambda: _ready(url), "alertmanager to be ready")
        yield Loop(controller, url, root)
    finally:
        stop_process(process, timeout=10)
        log.close()
        controller.stop()


def _ready(url: str) -> bool:
    try:
        return requests.get(f"{url}/-/ready", timeout=2).status_code == 200
    except requests.RequestException:
        return False


def _wait(condition, what: str, timeout: float = WAIT) -> None:  # type: ignore[no-untyped-def]
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout}s for {what}")
        time.sleep(0.2)


def _fire(alertmanager: str, alertname: str, **labels: str) -> None:
    alert = {"labels": {"alertname": alertname, **labels}, "annotations": {"summary": "test"},
             "startsAt": datetime.now(UTC).isoformat()}  # fmt: skip
    answer = requests.post(f"{alertmanager}/api/v2/alerts", json=[alert], timeout=10)
    assert answer.status_code == 200, answer.text


def test_a_drift_alert_routed_by_alertmanager_starts_exactly_one_run(loop: Loop) -> None:
    for _ in range(3):
        _fire(loop.alertmanager, "FraudFeatureDrift", column="V3", kind="skew")
        time.sleep(0.5)
    assert loop.controller.wait_runs(1) == ['{}:{alertname="FraudFeatureDrift"}']
    _fire(loop.alertmanager, "FraudFeatureDrift", column="V7", kind="drift")  # the group grows: a new notification
    _wait(lambda: loop.controller.log_path.read_text().count("already started for this alert group") >= 1,
          "the grown group's notification")  # fmt: skip
    assert len(loop.controller.runs()) == 1


def test_a_degraded_version_alert_rolls_the_champion_back(loop: Loop) -> None:
    _fire(loop.alertmanager, "FraudNewestVersionDegraded", model_version="3")
    _wait(lambda: (champion.read(str(loop.root)).champion or champion.Champion("", "")).version == "2", "a rollback")


def test_a_route_with_the_wrong_token_is_refused_and_moves_nothing(loop: Loop) -> None:
    before = champion.read(str(loop.root))
    _fire(loop.alertmanager, "FraudNewestVersionDegraded", model_version="3", via="impostor")
    _fire(loop.alertmanager, "FraudFeatureDrift", via="impostor")
    _wait(lambda: loop.controller.log_path.read_text().count("wrong bearer token") >= 2, "both refusals")
    assert champion.read(str(loop.root)) == before
    assert loop.controller.runs() == []
