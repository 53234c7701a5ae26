"""A real Alertmanager (Debian's ``prometheus-alertmanager``) routes posted alerts to the controller with the bearer
token from its ``credentials_file``: a drift alert starts exactly one run, a degraded version rolls back, and a
route holding the wrong token moves nothing."""

from __future__ import annotations

import shutil
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path

import pytest
import requests

from fraud_detection import champion
from tests.monitoring.loop_parts import FAST, Alertmanager, Controller, receiver, serving_root, wait_until

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus-alertmanager") is None, reason="make sysdeps installs it"),
]


@dataclass
class Loop:
    controller: Controller
    alertmanager: str
    root: Path


@pytest.fixture
def loop(tmp_path: Path, model_dir: Path) -> Iterator[Loop]:
    root = serving_root(tmp_path / "serving", model_dir)
    controller = Controller(tmp_path / "controller", root)
    wrong = tmp_path / "wrong-token"
    wrong.write_text("not-the-token\n")
    config = {
        "route": {
            "receiver": "controller",
            "group_by": ["alertname"],
            **FAST,
            "routes": [{"receiver": "impostor", "matchers": ['via="impostor"'], **FAST}],
        },
        "receivers": [receiver("controller", controller), receiver("impostor", controller, wrong)],
    }
    try:
        alertmanager = Alertmanager(tmp_path, config)
    except BaseException:
        controller.stop()
        raise
    try:
        yield Loop(controller, alertmanager.url, root)
    finally:
        alertmanager.stop()
        controller.stop()


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
    wait_until(lambda: loop.controller.log_path.read_text().count("already started for this alert group") >= 1,
               "the grown group's notification")  # fmt: skip
    assert len(loop.controller.runs()) == 1


def test_a_degraded_version_alert_rolls_the_champion_back(loop: Loop) -> None:
    _fire(loop.alertmanager, "FraudNewestVersionDegraded", model_version="3")
    wait_until(
        lambda: (champion.read(str(loop.root)).champion or champion.Champion("", "")).version == "2", "a rollback"
    )


def test_a_route_with_the_wrong_token_is_refused_and_moves_nothing(loop: Loop) -> None:
    before = champion.read(str(loop.root))
    _fire(loop.alertmanager, "FraudNewestVersionDegraded", model_version="3", via="impostor")
    _fire(loop.alertmanager, "FraudFeatureDrift", via="impostor")
    wait_until(lambda: loop.controller.log_path.read_text().count("wrong bearer token") >= 2, "both refusals")
    assert champion.read(str(loop.root)) == before
    assert loop.controller.runs() == []
