"""The joiner process on real parts: a real Prometheus scrapes its ``/metrics`` and reads back a known AUPRC, a
shadow comparison and the skew of the one shifted feature; fed through a Tansu broker with duplicate, late and
out-of-order labels and records, it shows the same metrics as the store fed in order."""

from __future__ import annotations

import random
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path

import pytest
from sklearn.metrics import average_precision_score

from fraud_detection.monitoring import join, labels, records
from tests.monitoring.loop_parts import JoinerProcess
from tests.monitoring.traffic import FEATURES, labels_of, recent_with_a_shift, scored

pytestmark = pytest.mark.slow
WAIT = 60.0


def _traffic(now: datetime) -> tuple[list[records.PredictionRecord], list[labels.Label], float]:
    """Matured traffic of champion (default) and challenger (shadow), its labels, and the champion's AUPRC."""
    start = now - timedelta(days=45)
    champion_records, outcome = scored(3000, seed=7, start=start)
    challenger_records, _ = scored(3000, seed=7, start=start, version="4", endpoint="shadow")
    expected = float(average_precision_score(outcome, [r.data.probability for r in champion_records]))
    return champion_records + challenger_records, labels_of(outcome, start), expected


@pytest.fixture
def fed_store(tmp_path: Path) -> Iterator[tuple[Path, float, Path]]:
    now = datetime.now(UTC)
    items, given, expected = _traffic(now)
    recent, reference = recent_with_a_shift(now, "V2")
    store = join.JoinStore(tmp_path / "join.sqlite")
    store.add_records(items + recent)
    store.add_labels(given)
    store.close()
    reference_file = tmp_path / "reference.json"
    reference_file.write_text(reference.model_dump_json())
    yield tmp_path / "join.sqlite", expected, reference_file


def test_prometheus_reads_back_the_known_auprc_the_shadow_comparison_and_the_one_skewed_feature(
    tmp_path: Path, fed_store: tuple[Path, float, Path]
) -> None:
    from tests.monitoring.test_live_prometheus import Prometheus

    db, expected, reference_file = fed_store
    joiner = JoinerProcess(tmp_path, db, "--reference", str(reference_file), "--resamples", "50")
    prometheus = Prometheus(tmp_path, {"fraud-joiner": f"127.0.0.1:{joiner.port}"}, {"groups": []})
    try:
        found = prometheus.wait_for('fraud_live_auprc{model_version="3", endpoint="default"}', timeout=WAIT)
        assert float(found[0]["value"][1]) == pytest.approx(expected, abs=1e-12)
        coverage = prometheus.wait_for('fraud_live_label_coverage{model_version="3"}')
        assert 0.3 < float(coverage[0]["value"][1]) < 1
        skewed = prometheus.wait_for('fraud_shift_psi{kind="skew"} > on(column, kind) fraud_shift_threshold')
        assert [s["metric"]["column"] for s in skewed] == ["V2"]
        assert len(prometheus.wait_for('fraud_shift_psi{kind="skew"}')) == len(FEATURES) + 1  # and the score
        difference = prometheus.wait_for(
            'fraud_shadow_auprc_difference{champion_version="3", challenger_version="4", bound="estimate"}'
        )
        assert float(difference[0]["value"][1]) == 0.0  # same scores on both endpoints (same seed)
    finally:
        prometheus.stop()
        joiner.stop()


def test_duplicate_late_and_out_of_order_messages_through_a_broker_give_the_in_order_metrics(tmp_path: Path) -> None:
    from confluent_kafka import Producer

    from tests.streaming.broker import Broker

    now = datetime.now(UTC)
    items, given, _ = _traffic(now)
    in_order = JoinerProcess(tmp_path / "a", _store(tmp_path / "a", items, given), "--resamples", "50")
    rng = random.Random(5)
    messages = [("r", records.encode(r)) for r in items + rng.sample(items, 600)]
    messages += [("l", (*labels.encode(g), [])) for g in given + rng.sample(given, 300)]
    overturned = [  # "legitimate" verdicts a later chargeback overturned
        g.model_copy(update={"label": 0, "label_time": g.label_time - timedelta(days=1)}) for g in given if g.label
    ]
    messages += [("l", (*labels.encode(g), [])) for g in overturned]
    bad = [("r", (b"tx-1", b"{}", [("ce_id", b"tx-1"), ("ce_type", b"org.kubeflow.serving.inference.request")])),
           ("l", (b"tx-2", b"not json", []))]  # fmt: skip
    messages += bad
    rng.shuffle(messages)
    with Broker(tmp_path / "tansu.log") as broker:
        broker.create_topics("loop-records", "loop-labels")
        producer = Producer(broker.config())
        for kind, (key, value, headers) in messages:
            producer.produce("loop-records" if kind == "r" else "loop-labels", value, key, headers=headers)
        assert producer.flush(30) == 0
        del producer  # no reconnecting after the broker stops
        (tmp_path / "b").mkdir()
        from_kafka = JoinerProcess(
            tmp_path / "b", tmp_path / "b" / "join.sqlite", "--bootstrap-servers", broker.bootstrap,
            "--records-topic", "loop-records", "--labels-topic", "loop-labels",
            "--group-id", "loop-joiner", "--resamples", "50",
        )  # fmt: skip
        try:
            expected = _wait_live(in_order, lambda found: bool(found))
            # every message stored, then one refresh after the last batch: the in-order store's metrics, exactly
            found = _wait_live(from_kafka, lambda found: found == expected)
            assert found == expected
            samples = from_kafka.samples()
            assert sum(v for (name, _), v in samples.items() if name == "fraud_joiner_messages_total") == len(
                messages
            ) - len(bad)
            assert samples[("fraud_joiner_rejected_total", (("kind", "record"),))] == 1
            assert samples[("fraud_joiner_rejected_total", (("kind", "label"),))] == 1
            log = from_kafka.log_path.read_text()
            assert "refused a record at loop-records/" in log and "header ce_specversion is missing" in log
        finally:
            from_kafka.stop()
            in_order.stop()


def _wait_live(joiner: JoinerProcess, done, timeout: float = WAIT) -> dict[object, float]:  # type: ignore[no-untyped-def]
    """The joiner's ``fraud_live_*`` and ``fraud_shadow_*`` samples once ``done`` holds for them (or at timeout)."""
    deadline = time.monotonic() + timeout
    while True:
        found = _live(joiner.samples())
        if done(found) or time.monotonic() > deadline:
            return found
        time.sleep(0.5)


def _store(work: Path, items: list[records.PredictionRecord], given: list[labels.Label]) -> Path:
    work.mkdir(parents=True, exist_ok=True)
    store = join.JoinStore(work / "join.sqlite")
    store.add_records(items)
    store.add_labels(given)
    store.close()
    return work / "join.sqlite"


def _live(samples: dict[tuple[str, tuple[tuple[str, str], ...]], float]) -> dict[object, float]:
    return {key: value for key, value in samples.items() if key[0].startswith(("fraud_live_", "fraud_shadow_"))}
