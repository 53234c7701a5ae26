"""The loop after deploy end to end on real parts: the joiner's gauges, a real Prometheus evaluating alert rules
on them, a real Alertmanager, the controller. Served traffic skews on one feature and the champion's live
AUPRC is that of a model trained on flipped labels: exactly one retraining run starts, and the champion rolls
back to the version before it."""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fraud_detection import champion
from fraud_detection.monitoring import join
from tests.monitoring.loop_parts import (
    FAST,
    Alertmanager,
    Controller,
    JoinerProcess,
    receiver,
    serving_root,
    wait_until,
)
from tests.monitoring.rules import DASHBOARD, rule_groups, without_waits
from tests.monitoring.traffic import labels_of, recent_with_a_shift, scored

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus-alertmanager") is None, reason="make sysdeps installs it"),
]
WAIT = 90.0
LIVE_PANELS = ("Live precision and recall", "Live AUPRC", "Live alert rate and label coverage",
               "Estimated precision and recall (labels pending)", "PSI per feature")  # fmt: skip
"""The loop's dashboard panels this traffic feeds (no shadow here, and no server to drop records)."""


def _loop_panels() -> dict[str, list[str]]:
    """The queries of the dashboard's loop row, by panel title."""
    dashboard = json.loads(DASHBOARD.read_text())
    row = next(panel for panel in dashboard["panels"] if panel["type"] == "row")
    return {panel["title"]: [target["expr"] for target in panel["targets"]] for panel in row["panels"]}


def _fed_store(work: Path, now: datetime) -> tuple[Path, Path]:
    """Matured traffic of version 3 scored like a model trained on flipped labels, and a last half hour whose
    ``V2`` moved; the join store and the training reference."""
    start = now - timedelta(days=45)
    items, outcome = scored(3000, seed=11, start=start)
    flipped = [
        r.model_copy(update={"data": r.data.model_copy(update={"probability": 1 - r.data.probability,
                                                               "decision": r.data.probability < 0.5})})
        for r in items
    ]  # fmt: skip
    recent, reference = recent_with_a_shift(now, "V2")
    work.mkdir(parents=True, exist_ok=True)
    store = join.JoinStore(work / "join.sqlite")
    store.add_records(flipped + recent)
    store.add_labels(labels_of(outcome, start))
    store.close()
    (work / "reference.json").write_text(reference.model_dump_json())
    return work / "join.sqlite", work / "reference.json"


def test_skewed_traffic_starts_one_run_and_a_flipped_label_champion_rolls_back(tmp_path: Path, model_dir: Path) -> None:
    from tests.monitoring.test_live_prometheus import Prometheus

    root = serving_root(tmp_path / "serving", model_dir)
    db, reference = _fed_store(tmp_path / "joiner", datetime.now(UTC))
    controller = Controller(tmp_path / "controller", root)
    parts: list[Any] = []
    try:
        alertmanager = Alertmanager(
            tmp_path, {"route": {"receiver": "controller", "group_by": ["alertname"], **FAST},
                       "receivers": [receiver("controller", controller)]}
        )  # fmt: skip
        parts.append(alertmanager)
        joiner = JoinerProcess(tmp_path / "joiner", db, "--reference", str(reference), "--resamples", "20")
        parts.append(joiner)
        alerting = {"alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.url[7:]]}]}]}}
        rules = without_waits(rule_groups())  # the manifest's rules, firing as soon as their condition holds
        prometheus = Prometheus(tmp_path, {"fraud-joiner": f"127.0.0.1:{joiner.port}"}, rules, alerting)
        parts.append(prometheus)
        wait_until(lambda: len(controller.runs()) >= 1, "a retraining run", WAIT)
        wait_until(lambda: _version(root) == "2", "the rollback to version 2", WAIT)
        time.sleep(3)  # the alerts keep firing; Alertmanager's notifications of the grown groups come and go
        assert controller.runs() == ['{}:{alertname="FraudFeatureSkew"}']
        assert _version(root) == "2"
        firing = {a["metric"]["alertname"] for a in prometheus.query('ALERTS{alertstate="firing"}')}
        assert firing == {"FraudFeatureSkew", "FraudNewestVersionDegraded"}
        skewed = {a["metric"]["column"] for a in prometheus.query('ALERTS{alertname="FraudFeatureSkew"}')}
        assert skewed == {"V2"}
        degraded = {
            a["metric"]["model_version"] for a in prometheus.query('ALERTS{alertname="FraudNewestVersionDegraded"}')
        }
        assert degraded == {"3"}
        panels = _loop_panels()
        for title in LIVE_PANELS:
            for expression in panels[title]:
                assert prometheus.wait_for(expression, timeout=30), f"{title}: {expression}"
    finally:
        for part in reversed(parts):
            part.stop()
        controller.stop()


def _version(root: Path) -> str:
    found = champion.read(str(root)).champion
    return found.version if found else ""
