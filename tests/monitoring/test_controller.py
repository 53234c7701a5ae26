"""The controller over real HTTP on 127.0.0.1: only the bearer token gets in, a drift alert starts exactly one
retraining run however often and however concurrently it comes, and a degraded champion rolls back by
compare-and-set."""

from __future__ import annotations

import time
from collections.abc import Iterator
from concurrent.futures import ThreadPoolExecutor
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest

from fraud_detection import champion
from monitor import actions
from tests.monitoring.loop_parts import TOKEN, Controller, notification, serving_root

pytestmark = pytest.mark.slow


@pytest.fixture
def root(tmp_path: Path, model_dir: Path) -> Path:
    return serving_root(tmp_path / "serving", model_dir)


@pytest.fixture
def controller(tmp_path: Path, root: Path) -> Iterator[Controller]:
    process = Controller(tmp_path / "controller", root)
    try:
        yield process
    finally:
        process.stop()


@pytest.mark.parametrize(("token", "scheme", "status"), [(None, "Bearer", 401), ("", "Bearer", 401),
                                                         (TOKEN, "Basic", 401), ("wrong", "Bearer", 403),
                                                         (TOKEN + "x", "Bearer", 403)])  # fmt: skip
def test_a_call_without_the_token_or_with_a_wrong_one_is_refused_moves_nothing_and_is_logged(
    controller: Controller, root: Path, token: str | None, scheme: str, status: int
) -> None:
    before = champion.read(str(root))
    for body in (
        notification("FraudNewestVersionDegraded", "g-rollback", model_version="3"),
        notification("FraudFeatureDrift", "g-drift"),
    ):
        assert controller.post(body, token, scheme).status_code == status
    time.sleep(1.0)  # a run would have written its line by now
    assert champion.read(str(root)) == before
    assert controller.runs() == []
    assert "refused POST /alerts from 127.0.0.1" in controller.log_path.read_text()


def test_repeated_and_concurrent_alerts_start_exactly_one_run(controller: Controller) -> None:
    bodies = [notification("FraudFeatureDrift", '{}:{alertname="FraudFeatureDrift"}')] * 12
    bodies += [notification("FraudLivePerformanceDecay", '{}:{alertname="FraudLivePerformanceDecay"}')] * 4
    with ThreadPoolExecutor(max_workers=16) as pool:
        answers = list(pool.map(controller.post, bodies))
    assert {a.status_code for a in answers} == {200}
    outcomes = [a.json()["actions"][0]["outcome"] for a in answers]
    assert outcomes.count("started") == 1, outcomes
    assert len(controller.wait_runs(1)) == 1
    assert controller.post(bodies[0]).json()["actions"][0]["outcome"] == "already started for this alert group"
    time.sleep(1.0)
    assert len(controller.runs()) == 1


def test_a_degraded_champion_rolls_back_to_the_previous_version_once(controller: Controller, root: Path) -> None:
    body = notification("FraudNewestVersionDegraded", "g-rollback", model_version="3")
    answer = controller.post(body)
    assert answer.status_code == 200
    assert answer.json()["actions"] == [
        {"action": "rollback", "alert": "FraudNewestVersionDegraded", "outcome": "rolled back from version 3 to 2"}
    ]
    now = champion.read(str(root))
    assert now.champion is not None and now.champion.version == "2"
    assert (root / "champion").resolve() == (root / "v2").resolve()
    again = controller.post(body).json()["actions"][0]["outcome"]  # the alert repeats: nothing moves twice
    assert again == "champion is version 2, not the degraded 3: nothing to roll back"
    assert champion.read(str(root)) == now


def test_a_rollback_that_loses_the_race_leaves_the_champion_as_the_winner_set_it(
    root: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    def rival(point: str) -> None:
        if point == "rollback-read":  # another writer moves the pointer between the read and the write
            observed = champion.read(str(root))
            champion.compare_and_set(str(root), observed, champion.Champion("1", str(root / "v1")))

    monkeypatch.setattr(champion, "pause", rival)
    outcome = actions.rollback(str(root), "3")
    assert outcome.startswith("lost the race")
    found = champion.read(str(root)).champion
    assert found is not None and found.version == "1"


def test_a_resolved_group_may_retrain_again_once_the_lease_ran_out(tmp_path: Path) -> None:
    lease = actions.RetrainLease(tmp_path / "lease.sqlite", timedelta(hours=6))
    started: list[str] = []
    request = actions.RetrainRequest("group-a", ("FraudFeatureDrift",))
    t0 = datetime(2026, 1, 1, tzinfo=UTC)
    assert lease.start_once(request, lambda r: started.append(r.group_key), t0) == "started"
    lease.resolved("group-a")
    other = actions.RetrainRequest("group-b", ("FraudScoreDrift",))
    held = lease.start_once(other, lambda r: started.append(r.group_key), t0 + timedelta(hours=1))
    assert held == "a run started for group group-a holds the lease"
    assert lease.start_once(request, lambda r: started.append(r.group_key), t0 + timedelta(hours=7)) == "started"
    assert started == ["group-a", "group-a"]


def test_a_run_that_cannot_start_leaves_no_record(tmp_path: Path) -> None:
    lease = actions.RetrainLease(tmp_path / "lease.sqlite", timedelta(hours=6))
    run = actions.CommandRun(["/nonexistent/fraud", "run"], tmp_path / "logs")
    with pytest.raises(OSError):
        lease.start_once(actions.RetrainRequest("group-a", ("FraudFeatureDrift",)), run)
    assert lease.runs() == []


def test_a_body_that_is_not_an_alertmanager_webhook_gets_400_and_moves_nothing(
    controller: Controller, root: Path
) -> None:
    before = champion.read(str(root))
    body = notification("FraudNewestVersionDegraded", "g", model_version="3") | {"version": "3"}
    answer = controller.post(body)
    assert answer.status_code == 400 and "version" in answer.text
    assert champion.read(str(root)) == before and controller.runs() == []
