"""The label join: pending rows are never negatives, and duplicate, late and out-of-order input gives the same
metrics every time."""

from __future__ import annotations

import random
from dataclasses import asdict
from datetime import timedelta
from pathlib import Path

import numpy as np
import pytest

from fraud_detection.monitoring import join, labels, performance
from fraud_detection.monitoring.labels import Label
from tests.monitoring.traffic import START, labels_of, scored

MATURITY = timedelta(days=30)
NOW = START + timedelta(days=60)


def _metrics(store: join.JoinStore, now=NOW) -> list[dict[str, object]]:  # type: ignore[no-untyped-def]
    matured, pending = join.split_by_maturity(store.rows(START - timedelta(days=1), now), now, MATURITY)
    return [asdict(m) for m in performance.realised(matured)] + [asdict(e) for e in performance.estimated(pending)]


def test_duplicate_late_and_out_of_order_labels_and_records_give_identical_metrics(tmp_path: Path) -> None:
    items, outcome = scored(3000, seed=1)
    given = labels_of(outcome)
    # noise: a legitimate label first, overturned later by a chargeback; a stale legitimate label after a fraud one
    flipped = [Label(tx_id=g.tx_id, label=0, label_time=g.label_time - timedelta(days=1)) for g in given if g.label]
    stale = [Label(tx_id=g.tx_id, label=0, label_time=g.label_time - timedelta(hours=1)) for g in given[::7] if g.label]
    reference = join.JoinStore(tmp_path / "in-order.sqlite")
    reference.add_records(items)
    reference.add_labels(flipped + given)
    expected = _metrics(reference)
    for trial in range(4):
        rng = random.Random(trial)
        shuffled_records = items + rng.sample(items, 500)  # redelivered records
        rng.shuffle(shuffled_records)
        shuffled_labels = given + flipped + stale + rng.sample(given, 800)  # resent labels
        rng.shuffle(shuffled_labels)
        store = join.JoinStore(tmp_path / f"trial-{trial}.sqlite")
        # labels before their records, in small batches, interleaved
        for start in range(0, len(shuffled_labels), 250):
            store.add_labels(shuffled_labels[start : start + 250])
            store.add_records(shuffled_records[start * 2 : start * 2 + 500])
        store.add_records(shuffled_records)
        assert _metrics(store) == expected
    assert expected[0]["positives"] == int(outcome.sum())


def test_a_pending_row_is_never_counted_as_a_negative(tmp_path: Path) -> None:
    items, outcome = scored(200, seed=2)
    store = join.JoinStore(tmp_path / "join.sqlite")
    store.add_records(items)
    scored_last = START + timedelta(seconds=199)
    before = scored_last + MATURITY - timedelta(seconds=100)  # half the rows matured
    matured, pending = join.split_by_maturity(store.rows(START, before), before, MATURITY)
    assert len(matured) == 100 and len(pending) == 100
    assert "outcome" not in pending.columns and pending["label"].isna().all()
    assert (matured["outcome"] == 0).all() and not matured["labelled"].any()  # matured, no label: legitimate
    store.add_labels(labels_of(outcome))  # the labels come: only matured rows change, pending ones stay out
    matured, pending = join.split_by_maturity(store.rows(START, before), before, MATURITY)
    assert matured["outcome"].sum() == outcome[:100].sum()
    assert len(pending) == 100


def test_the_latest_label_wins_and_a_tie_goes_to_fraud(tmp_path: Path) -> None:
    store = join.JoinStore(tmp_path / "join.sqlite")
    store.add_records(scored(1)[0])
    day = START + timedelta(days=2)
    store.add_labels([Label(tx_id="tx-0", label=1, label_time=day + timedelta(days=1))])
    store.add_labels([Label(tx_id="tx-0", label=0, label_time=day)])  # older, arrives later: ignored
    assert store.rows(START, NOW)["label"].tolist() == [1.0]
    store.add_labels([Label(tx_id="tx-0", label=0, label_time=day + timedelta(days=2))])  # reversed chargeback
    store.add_labels([Label(tx_id="tx-0", label=1, label_time=day + timedelta(days=2))])  # same time, fraud
    assert store.rows(START, NOW)["label"].tolist() == [1.0]


def test_a_label_file_imports_from_csv_and_json_lines_alike(tmp_path: Path) -> None:
    given = labels_of(scored(50, seed=3)[1])
    csv_file, jsonl = tmp_path / "labels.csv", tmp_path / "labels.jsonl"
    csv_file.write_text(
        "tx_id,label,label_time\n" + "".join(f"{g.tx_id},{g.label},{g.label_time.isoformat()}\n" for g in given)
    )
    jsonl.write_text("".join(labels.encode(g)[1].decode() + "\n" for g in given))
    assert list(labels.read_file(csv_file)) == given == list(labels.read_file(jsonl))


@pytest.mark.parametrize(
    ("line", "message"),
    [
        ("tx-1,2,2026-01-02T00:00:00+00:00", "labels.csv line 3: label"),
        ("tx-1,1,2026-01-02T00:00:00", "labels.csv line 3: label_time: Value error, label_time has no timezone"),
        (",1,2026-01-02T00:00:00+00:00", "labels.csv line 3: tx_id"),
    ],
)
def test_a_bad_label_line_is_named(tmp_path: Path, line: str, message: str) -> None:
    path = tmp_path / "labels.csv"
    path.write_text(f"tx_id,label,label_time\ntx-0,0,1767225600\n{line}\n")
    with pytest.raises(labels.LabelError, match=message):
        list(labels.read_file(path))


def test_realised_auprc_is_scikit_learns_on_the_matured_rows(tmp_path: Path) -> None:
    from sklearn.metrics import average_precision_score

    items, outcome = scored(2000, seed=4)
    store = join.JoinStore(tmp_path / "join.sqlite")
    store.add_records(items)
    store.add_labels(labels_of(outcome))
    (found,) = performance.realised(join.split_by_maturity(store.rows(START, NOW), NOW, MATURITY)[0])
    probability = np.array([i.data.probability for i in items])
    assert found.auprc == pytest.approx(average_precision_score(outcome, probability), abs=1e-12)
    flagged = probability >= 0.5
    assert found.precision == pytest.approx(outcome[flagged].mean())
    assert found.recall == pytest.approx(outcome[flagged].sum() / outcome.sum())
    assert found.alert_rate == pytest.approx(flagged.mean())
    assert found.label_coverage == pytest.approx(len(labels_of(outcome)) / 2000)


def test_the_estimate_before_maturity_is_close_for_calibrated_scores(tmp_path: Path) -> None:
    items, outcome = scored(20000, seed=5)
    store = join.JoinStore(tmp_path / "join.sqlite")
    store.add_records(items)
    early = START + timedelta(days=1)  # nothing matured
    matured, pending = join.split_by_maturity(store.rows(START, early), early, MATURITY)
    assert matured.empty
    (estimate,) = performance.estimated(pending)
    flagged = np.array([i.data.decision for i in items])
    error = 4 * np.sqrt(0.25 / flagged.sum())  # four standard errors of a share of the flagged rows, at most
    assert estimate.precision == pytest.approx(outcome[flagged].mean(), abs=error)
    assert estimate.recall == pytest.approx(outcome[flagged].sum() / outcome.sum(), abs=0.03)
    assert estimate.fraud_rate == pytest.approx(outcome.mean(), abs=0.01)


def test_the_joiners_file_import_stores_each_label_once(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    from monitor.joiner import main

    given = labels_of(scored(40, seed=6)[1])
    path = tmp_path / "labels.jsonl"
    path.write_text("".join(labels.encode(g)[1].decode() + "\n" for g in given))
    db = tmp_path / "join.sqlite"
    assert main(["import-labels", "--db", str(db), str(path), str(path)]) == 0  # the same file twice
    assert f"stored {2 * len(given)} labels" in capsys.readouterr().out
    store = join.JoinStore(db)
    assert store.counts() == (0, len(given))


def test_cohorts_hold_the_span_before_the_cutoff_and_the_recent_pending_rows(tmp_path: Path) -> None:
    items, _ = scored(100, seed=9)  # one a second from START
    store = join.JoinStore(tmp_path / "join.sqlite")
    store.add_records(items)
    now = START + MATURITY + timedelta(seconds=59.5)  # rows 0..59 matured
    matured, pending = join.cohorts(store, now, MATURITY, timedelta(seconds=10))
    assert matured["tx_id"].tolist() == sorted(f"tx-{i}" for i in range(50, 60))
    assert pending.empty  # the newest rows were scored a maturity ago, far outside the last ten seconds
    matured, pending = join.cohorts(store, START + timedelta(seconds=99.5), MATURITY, timedelta(seconds=10))
    assert matured.empty and sorted(pending["tx_id"]) == sorted(f"tx-{i}" for i in range(90, 100))


def test_pruning_forgets_old_predictions_and_their_labels_only(tmp_path: Path) -> None:
    items, outcome = scored(100, seed=10)
    store = join.JoinStore(tmp_path / "join.sqlite")
    store.add_records(items)
    store.add_labels(labels_of(outcome, delay=timedelta(seconds=1)))
    early_label = Label(tx_id="tx-unscored", label=1, label_time=START + timedelta(days=5))  # record not there yet
    store.add_labels([early_label])
    assert store.prune(START + timedelta(seconds=50)) == 50
    predictions, labelled = store.counts()
    assert predictions == 50
    kept = store.rows(START, NOW)
    assert kept["tx_id"].str.removeprefix("tx-").astype(int).min() == 50
    assert labelled == sum(1 for g in labels_of(outcome) if int(g.tx_id[3:]) >= 49) + 1  # tx-49's label: time 50 s
