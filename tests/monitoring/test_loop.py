"""The loop after deploy end to end on real parts, nothing simulated between them.

A booster trained by the project's own train function on labels that were all inverted is exported as version 3
and made the champion by compare-and-set. The real model server (``python -m serving``) serves it, its
prediction log going to a Tansu broker; the traffic is fresh synthetic transactions whose ``V2`` moved by one
standard deviation. Their true labels go on the labels topic. The joiner consumes both topics, and once the
rows matured it computes the live AUPRC from the scores the server really answered. A real Prometheus evaluates
the manifest's alert rules on the joiner's and the server's ``/metrics``, a real Alertmanager routes them, and
the controller acts: exactly one retraining run starts (the skew of ``V2``, and of no other feature), and the
champion rolls back to version 2 by compare-and-set.
"""

from __future__ import annotations

import json
import shutil
import time
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import requests
from sklearn.metrics import average_precision_score

from fraud_detection import boosting, champion, modeldir, synth
from fraud_detection.monitoring import labels, shift
from fraud_detection.schema import FEATURES, LABEL
from tests.monitoring.loop_parts import (
    FAST,
    Alertmanager,
    Controller,
    JoinerProcess,
    receiver,
    serving_root,
    wait_until,
)
from tests.monitoring.rules import DASHBOARD, LOOP_GROUP, rule_groups, without_waits
from tests.serving.cases import V1
from tests.serving.conftest import ServerProcess
from tests.streaming.broker import Broker

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(shutil.which("prometheus-alertmanager") is None, reason="make sysdeps installs it"),
]
WAIT = 90.0
MATURITY_SECONDS = 8.0
"""Rows mature this long after they were scored: the estimate (labels pending) shows first, then the live metrics."""
RECORDS, LABELS = "loop-predictions", "loop-labels"
SHIFTED = "V2"
LIVE_PANELS = ("Live precision and recall", "Live AUPRC", "Live alert rate and label coverage",
               "Estimated precision and recall (labels pending)", "PSI per feature")  # fmt: skip
"""The loop's dashboard panels this traffic feeds (no shadow here, and the prediction log drops nothing)."""
FLOOR = 10.0
"""``FraudNewestVersionDegraded``: live AUPRC below this many times the live fraud rate."""


def _loop_panels() -> dict[str, list[str]]:
    """The queries of the dashboard's loop row, by panel title."""
    dashboard = json.loads(DASHBOARD.read_text())
    row = next(panel for panel in dashboard["panels"] if panel["type"] == "row")
    return {panel["title"]: [target["expr"] for target in panel["targets"]] for panel in row["panels"]}


def _flipped_champion(directory: Path) -> tuple[Path, shift.Reference]:
    """A real booster trained on the serving tests' data (the good versions' own) with every label inverted, saved
    as version 3; and the training reference of its features (the score's is left out: this traffic moves one
    feature, and a score skew would be a second, legitimate retraining alert)."""
    frame = synth.generate(synth.SyntheticConfig(n_rows=20_000, seed=3))
    cut = int(len(frame) * 0.7)
    x_train, y_train = boosting.features_and_label(frame.iloc[:cut])
    x_valid, y_valid = boosting.features_and_label(frame.iloc[cut:])
    result = boosting.train_booster(
        x_train,
        1 - y_train,
        x_valid,
        1 - y_valid,
        boosting.TrainParams(n_rounds=30, early_stopping_rounds=10, max_depth=4, nthread=1),
        log_every=0,
    )
    metadata = modeldir.ModelMetadata(model_version="3", threshold=result.threshold, data_version="flipped-labels")
    reference = shift.Reference.of(frame.iloc[:cut][list(FEATURES)])
    return modeldir.save_model_dir(result.booster, metadata, directory), reference


def _traffic() -> pd.DataFrame:
    """Every fraud of a fresh synthetic frame and 4,000 of its legitimate rows, shuffled (about 4% fraud), with
    ``V2`` moved by one standard deviation."""
    frame = synth.generate(synth.SyntheticConfig(n_rows=80_000, seed=5))
    frauds, legitimate = frame[frame[LABEL] == 1], frame[frame[LABEL] == 0].sample(4000, random_state=1)
    sent = pd.concat([frauds, legitimate]).sample(frac=1, random_state=2).reset_index(drop=True)
    sent[SHIFTED] += frame[SHIFTED].std()
    return sent


def _serve(
    server: ServerProcess, x: np.ndarray, batch: int = 500, prefix: str = "loop"
) -> tuple[list[str], np.ndarray]:
    """Score ``x`` through the server's V1 endpoint; the transaction ids its log gives the rows, and the answers."""
    ids: list[str] = []
    answers: list[float] = []
    for first in range(0, len(x), batch):
        chunk = x[first : first + batch]
        request_id = f"{prefix}-{first // batch}"
        response = requests.post(
            server.url + V1, json={"instances": chunk.tolist()}, headers={"x-request-id": request_id}, timeout=30
        )
        assert response.status_code == 200, response.text
        answers += [p["fraud_probability"] for p in response.json()["predictions"]]
        ids += [f"{request_id}/{i}" for i in range(len(chunk))]
    return ids, np.asarray(answers)


def _send_labels(broker: Broker, ids: list[str], outcome: np.ndarray) -> int:
    """Every fraud's chargeback and a third of the legitimate verdicts on the labels topic (the rest of the rows are
    judged legitimate once they mature); returns how many."""
    from confluent_kafka import Producer

    producer = Producer(broker.config())
    now = datetime.now(UTC)
    sent = 0
    for i, (tx_id, y) in enumerate(zip(ids, outcome, strict=True)):
        if y == 1 or i % 3 == 0:
            key, value = labels.encode(labels.Label(tx_id=tx_id, label=1 if y else 0, label_time=now))
            producer.produce(LABELS, value, key)
            sent += 1
    assert producer.flush(30) == 0
    return sent


def test_skewed_traffic_starts_one_run_and_a_champion_trained_on_flipped_labels_rolls_back(
    tmp_path: Path, model_dir: Path
) -> None:
    from tests.monitoring.test_live_prometheus import Prometheus

    root = serving_root(tmp_path / "serving", model_dir, versions=2)  # two good versions, the champion on v2
    flipped, reference = _flipped_champion(tmp_path / "flipped")
    observed = champion.read(str(root))
    uri = modeldir.publish(flipped, str(root), "3")
    champion.compare_and_set(str(root), observed, champion.Champion("3", uri))
    (tmp_path / "reference.json").write_text(reference.model_dump_json())
    parts: list[Any] = []
    try:
        broker = Broker(tmp_path / "tansu.log")
        parts.append(broker)
        broker.create_topics(RECORDS, LABELS)
        (tmp_path / "joiner").mkdir()
        joiner = JoinerProcess(  # first: it joins its consumer group while the server loads
            tmp_path / "joiner", tmp_path / "joiner" / "join.sqlite", "--bootstrap-servers", broker.bootstrap,
            "--records-topic", RECORDS, "--labels-topic", LABELS, "--reference", str(tmp_path / "reference.json"),
            "--maturity-hours", str(MATURITY_SECONDS / 3600), "--cohort-days", "1", "--resamples", "20",
            "--session-timeout-seconds", "6",  # Tansu holds a group's first join for about half of it
        )  # fmt: skip
        parts.append(joiner)
        log_env = {"FRAUD_PREDICTION_LOG_BOOTSTRAP_SERVERS": broker.bootstrap, "FRAUD_PREDICTION_LOG_TOPIC": RECORDS}
        server = ServerProcess(uri, tmp_path / "server.log", log_env)  # the champion of record
        parts.append(server)
        controller = Controller(tmp_path / "controller", root)
        parts.append(controller)
        alertmanager = Alertmanager(
            tmp_path, {"route": {"receiver": "controller", "group_by": ["alertname"], **FAST},
                       "receivers": [receiver("controller", controller)]}
        )  # fmt: skip
        parts.append(alertmanager)
        alerting = {"alerting": {"alertmanagers": [{"static_configs": [{"targets": [alertmanager.url[7:]]}]}]}}
        # the manifest's loop rules, firing as soon as their condition holds (the serving group's latency and
        # traffic alerts are another test's: a loaded test machine must not fail this one)
        rules = without_waits({"groups": [g for g in rule_groups()["groups"] if g["name"] == LOOP_GROUP]})
        targets = {"fraud-joiner": f"127.0.0.1:{joiner.port}", "fraud-predictor": server.url[7:]}
        prometheus = Prometheus(tmp_path, targets, rules, alerting)
        parts.append(prometheus)
        x, outcome = boosting.features_and_label(_traffic())  # while the server loads
        server.wait_ready()

        ids, answered = _serve(server, x)
        given = _send_labels(broker, ids, outcome)
        counted = {"record": float(len(ids)), "label": float(given)}
        wait_until(lambda: _stored(joiner) == counted, "every record and label in the join store", WAIT)

        wait_until(lambda: len(controller.runs()) >= 1, "a retraining run", WAIT)
        wait_until(lambda: _version(root) == "2", "the rollback to version 2", WAIT)
        time.sleep(3)  # the alerts keep firing; Alertmanager's notifications of the grown groups come and go
        assert controller.runs() == ['{}:{alertname="FraudFeatureSkew"}']
        assert _version(root) == "2" and _uri(root) == f"{root}/v2"
        firing = {a["metric"]["alertname"] for a in prometheus.query('ALERTS{alertstate="firing"}')}
        assert firing == {"FraudFeatureSkew", "FraudNewestVersionDegraded"}
        skewed = {a["metric"]["column"] for a in prometheus.query('ALERTS{alertname="FraudFeatureSkew"}')}
        assert skewed == {SHIFTED}
        degraded = {
            a["metric"]["model_version"] for a in prometheus.query('ALERTS{alertname="FraudNewestVersionDegraded"}')
        }
        assert degraded == {"3"}

        # The live AUPRC Prometheus holds is the served answers' AUPRC on the true labels, far below the floor,
        # while the version rolled back to clears it on the same transactions.
        live = prometheus.query('fraud_live_auprc{endpoint="default",model_version="3"}')
        assert len(live) == 1
        assert float(live[0]["value"][1]) == pytest.approx(average_precision_score(outcome, answered), abs=1e-6)
        rate = float(outcome.mean())
        assert average_precision_score(outcome, answered) < FLOOR * rate / 4
        good, _ = modeldir.load_model_dir(root / "v2")
        assert average_precision_score(outcome, boosting.predict_proba(good, x)) > FLOOR * rate

        # More traffic, unlabelled yet: the estimate from the scores shows while those rows are pending.
        more, _ = _serve(server, x[:200], prefix="later")
        counted["record"] += len(more)
        wait_until(lambda: _stored(joiner) == counted, "the later records in the join store", WAIT)
        panels = _loop_panels()
        for expression in panels["Estimated precision and recall (labels pending)"]:
            assert prometheus.wait_for(expression, timeout=MATURITY_SECONDS), expression
        for title in LIVE_PANELS:
            for expression in panels[title]:
                assert prometheus.wait_for(expression, timeout=30), f"{title}: {expression}"
    finally:
        for part in reversed(parts):
            part.stop()


def _stored(joiner: JoinerProcess) -> dict[str, float | None]:
    """How many records and labels the joiner has stored."""
    samples = joiner.samples()
    return {kind: samples.get(("fraud_joiner_messages_total", (("kind", kind),))) for kind in ("record", "label")}


def _version(root: Path) -> str:
    found = champion.read(str(root)).champion
    return found.version if found else ""


def _uri(root: Path) -> str:
    found = champion.read(str(root)).champion
    return found.uri if found else ""
