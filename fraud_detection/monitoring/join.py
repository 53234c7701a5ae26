"""The label join: prediction records and late labels in one SQLite file, and the maturity rule.

**Maturity.** A prediction matures ``maturity`` after it was scored (the time by which nearly every fraud is
reported: chargeback windows run weeks). Until then it is *pending*: it counts in no realised metric, labelled
or not, because the early labels are mostly the frauds and would bias precision and recall upwards. Once
mature, its outcome is its label when one arrived, and legitimate (0) when none did: no news by then is the
normal news of a legitimate transaction. A pending row is never counted as a negative. A label that arrives
after maturity replaces the implied 0, so the realised metrics of old cohorts can still move when very late
frauds come in; label coverage (the share of matured rows with an explicit label) shows how much rests on
the implied zeros.

**Duplicates and order.** Every write is an upsert whose winner does not depend on arrival order, so
replaying, duplicating or reordering the input gives the same tables and the same metrics:

* labels: the latest ``label_time`` wins; at equal times, fraud (1) wins over legitimate (0);
* records: one per transaction and endpoint; the earliest ``time`` wins, then the smaller model version (a
  redelivered record is the same record, and a transaction is judged on how it was first answered).

SQLite in WAL mode with ``synchronous=FULL``: a batch is committed whole or not at all, and a committed batch
survives a crash, so a consumer commits its Kafka offsets only after :meth:`JoinStore.add_records` or
:meth:`JoinStore.add_labels` returned.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Iterable
from datetime import datetime, timedelta
from pathlib import Path

import orjson
import pandas as pd

from fraud_detection.monitoring.labels import Label
from fraud_detection.monitoring.records import PredictionRecord

SCHEMA = """
CREATE TABLE IF NOT EXISTS predictions (
    tx_id TEXT NOT NULL,
    endpoint TEXT NOT NULL,
    model_version TEXT NOT NULL,
    probability REAL NOT NULL,
    decision INTEGER NOT NULL,
    scored_at REAL NOT NULL,
    features BLOB NOT NULL,
    PRIMARY KEY (tx_id, endpoint)
);
CREATE INDEX IF NOT EXISTS predictions_scored_at ON predictions (scored_at);
CREATE TABLE IF NOT EXISTS labels (
    tx_id TEXT PRIMARY KEY,
    label INTEGER NOT NULL,
    label_time REAL NOT NULL
);
"""

UPSERT_RECORD = """
INSERT INTO predictions VALUES (?, ?, ?, ?, ?, ?, ?)
ON CONFLICT (tx_id, endpoint) DO UPDATE SET
    model_version = excluded.model_version, probability = excluded.probability, decision = excluded.decision,
    scored_at = excluded.scored_at, features = excluded.features
WHERE (excluded.scored_at, excluded.model_version) < (predictions.scored_at, predictions.model_version)
"""

UPSERT_LABEL = """
INSERT INTO labels VALUES (?, ?, ?)
ON CONFLICT (tx_id) DO UPDATE SET label = excluded.label, label_time = excluded.label_time
WHERE (excluded.label_time, excluded.label) > (labels.label_time, labels.label)
"""

COLUMNS = ["tx_id", "endpoint", "model_version", "probability", "decision", "scored_at", "label"]


class JoinStore:
    """Prediction records and labels in one SQLite file (``:memory:`` for a throwaway store)."""

    def __init__(self, path: Path | str) -> None:
        if str(path) != ":memory:":
            Path(path).parent.mkdir(parents=True, exist_ok=True)
        self.connection = sqlite3.connect(str(path), check_same_thread=False, isolation_level=None)
        self.connection.execute("PRAGMA journal_mode=WAL")
        self.connection.execute("PRAGMA synchronous=FULL")
        self.connection.executescript(SCHEMA)

    def close(self) -> None:
        """Close the file (everything committed is already on disk)."""
        self.connection.close()

    def _write(self, statement: str, rows: list[tuple[object, ...]]) -> int:
        if not rows:
            return 0
        with self.connection:
            self.connection.execute("BEGIN IMMEDIATE")
            self.connection.executemany(statement, rows)
        return len(rows)

    def add_records(self, records: Iterable[PredictionRecord]) -> int:
        """Store prediction records in one transaction; returns how many were given (duplicates included)."""
        rows: list[tuple[object, ...]] = [
            (
                item.id,
                item.endpoint,
                item.data.model_version,
                item.data.probability,
                int(item.data.decision),
                item.time.timestamp(),
                orjson.dumps(item.data.features),
            )
            for item in records
        ]
        return self._write(UPSERT_RECORD, rows)

    def add_labels(self, labels: Iterable[Label]) -> int:
        """Store labels in one transaction; returns how many were given (duplicates included)."""
        rows: list[tuple[object, ...]] = [(item.tx_id, item.label, item.label_time.timestamp()) for item in labels]
        return self._write(UPSERT_LABEL, rows)

    def counts(self) -> tuple[int, int]:
        """``(prediction rows, labelled transactions)`` held."""
        predictions = self.connection.execute("SELECT COUNT(*) FROM predictions").fetchone()[0]
        labels = self.connection.execute("SELECT COUNT(*) FROM labels").fetchone()[0]
        return int(predictions), int(labels)

    def prune(self, before: datetime) -> int:
        """Forget predictions scored before ``before`` (no window reads them any more) and labels known before it
        whose prediction is gone; returns how many predictions went."""
        with self.connection:
            self.connection.execute("BEGIN IMMEDIATE")
            gone = self.connection.execute(
                "DELETE FROM predictions WHERE scored_at < ?", (before.timestamp(),)
            ).rowcount
            self.connection.execute(
                "DELETE FROM labels WHERE label_time < ? AND tx_id NOT IN (SELECT tx_id FROM predictions)",
                (before.timestamp(),),
            )
        return int(gone)

    def rows(self, scored_from: datetime, scored_to: datetime) -> pd.DataFrame:
        """Predictions scored in ``[scored_from, scored_to)`` with their label (NaN: none yet), one row each."""
        query = (
            "SELECT p.tx_id, p.endpoint, p.model_version, p.probability, p.decision, p.scored_at, l.label "
            "FROM predictions p LEFT JOIN labels l ON l.tx_id = p.tx_id "
            "WHERE p.scored_at >= ? AND p.scored_at < ? ORDER BY p.tx_id, p.endpoint"
        )
        found = self.connection.execute(query, (scored_from.timestamp(), scored_to.timestamp())).fetchall()
        frame = pd.DataFrame(found, columns=COLUMNS)
        frame["decision"] = frame["decision"].astype(bool)
        frame["label"] = frame["label"].astype(float)
        return frame

    def features(self, scored_from: datetime, scored_to: datetime, endpoint: str = "default") -> pd.DataFrame:
        """The features as scored by ``endpoint`` in ``[scored_from, scored_to)``, one row per transaction, plus
        the ``score`` (the probability)."""
        query = (
            "SELECT features, probability FROM predictions WHERE endpoint = ? AND scored_at >= ? AND scored_at < ? "
            "ORDER BY tx_id"
        )
        found = self.connection.execute(query, (endpoint, scored_from.timestamp(), scored_to.timestamp())).fetchall()
        frame = pd.DataFrame([orjson.loads(features) for features, _ in found])
        frame["score"] = [probability for _, probability in found]
        return frame


EPSILON = timedelta(microseconds=1)


def cohorts(store: JoinStore, now: datetime, maturity: timedelta, span: timedelta) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(matured, pending)`` at ``now``: the rows scored within ``span`` before the maturity cutoff, and the rows
    scored within ``span`` before ``now`` that have not matured yet (see :func:`split_by_maturity`)."""
    cutoff = now - maturity
    matured, _ = split_by_maturity(store.rows(cutoff - span, cutoff + EPSILON), now, maturity)
    _, pending = split_by_maturity(store.rows(max(cutoff, now - span), now + EPSILON), now, maturity)
    return matured, pending


def split_by_maturity(frame: pd.DataFrame, now: datetime, maturity: timedelta) -> tuple[pd.DataFrame, pd.DataFrame]:
    """``(matured, pending)`` rows of :meth:`JoinStore.rows` at ``now``.

    Matured rows get ``outcome`` (their label, or 0 when none came) and ``labelled``; pending rows keep a NaN
    label and get no outcome: they are never counted as negatives.
    """
    cutoff = (now - maturity).timestamp()
    mature = frame["scored_at"] <= cutoff
    matured = frame[mature].copy()
    matured["labelled"] = matured["label"].notna()
    matured["outcome"] = matured["label"].fillna(0).astype(int)
    return matured, frame[~mature].copy()
