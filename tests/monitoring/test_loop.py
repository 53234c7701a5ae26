"""The loop after deploy end to end on real parts: the joiner's gauges, a real Prometheus evaluating alert rules
on them, a real Alertmanager, the controller. Served traffic skews on one feature and the champion's live
AUPRC is that of a model trained on flipped labels: exactly one retraining run starts, and the champion rolls
back to the version before it."""

from __future__ import annotations

import shutil
import time
from datetime import UTC, datetime, timedelta
from pathlib import Path

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
from tests.monitoring.traffic import labels_of, recent_with_a_shift, scored

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus-alertmanager") is None, reason="make sysdeps installs it"),
]
WAIT = 90.0
RULES = {
    "groups": [
        {
            "name": "fraud-loop",
            "rules": [
                {
                    "alert": "FraudFeatureSkew",
                    "expr": 'fraud_shift_psi{kind="skew"} > on(column, kind) fraud_shift_threshold{kind="skew"}',
                    "labels": {"severity": "ticket"},
                },
                {
                    "alert": "FraudNewestVersionDegraded",
                    "expr": 'fraud_live_auprc{endpoint="default"} < 0.3',
                    "labels": {"severity": "page"},
                },
            ],
        }
    ]
}


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
    parts: list = []  # type: ignore[type-arg]
    try:
        alertmanager = Alertmanager(
            tmp_path, {"route": {"receiver": "controller", "group_by": ["alertname"], **FAST},
                       "receivers": [receiver("controller", controller)]}
        )  # fmt: skip
        parts.append(alertmanager)
        joiner = JoinerProcess(tmp_path / "joiner", db, "--reference", str(reference), "--resamples", "20")
        parts.append(joiner)
        alerting = {"alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.url[7:]]}]}]}}
        prometheus = Prometheus(tmp_path, {"fraud-joiner": f"127.0.0.1:{joiner.port}"}, RULES, alerting)
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
    finally:
        for part in reversed(parts):
            part.stop()
        controller.stop()


def _version(root: Path) -> str:
    found = champion.read(str(root)).champion
    return found.version if found else ""
