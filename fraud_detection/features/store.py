"""The entity-state store: what the online lookup reads, and what the stream applies exactly once.

``EntityStateStore`` is the protocol; ``SQLiteStateStore`` is the embedded default and
``fraud_detection.features.redis_store.RedisStateStore`` the production one. Both keep, per entity, the events
of the last ``horizon + grace`` seconds behind the latest applied event time ("now"), plus the labels by
transaction id. ``horizon`` is ``FeatureSet.horizon``; ``grace`` (default a day) keeps enough for a transaction
redelivered up to that long after "now" to be scored again exactly. Both apply a transaction in one atomic
step that also records its id, so applying it again (a redelivery after a kill -9 before the offset commit)
changes nothing.

Why SQLite for the embedded store: one writer process (the stream) and reader processes (the predictor) must
share it without a server. SQLite in WAL mode gives readers a consistent snapshot while the writer commits, and
its transactions make "record the id and add the events" one step; a dict with a file would need its own
locking and crash safety.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Mapping
from pathlib import Path
from typing import Protocol

from fraud_detection.features.online import EntityState, StoredEvent, Transaction

GRACE = 86_400.0
"""Seconds of state kept beyond the feature horizon, so a redelivered transaction is scored as the first time."""


class StoreUnavailable(RuntimeError):
    """The state store cannot be reached or opened; the message names its address. Never read as empty state."""


class EntityStateStore(Protocol):
    """Per-entity recent events and labels, read by the lookup and written by the stream."""

    def read(self, keys: Mapping[str, str]) -> dict[str, EntityState]:
        """The state of each entity, by role (``{"card": "c1", "terminal": "t9"}``), as one consistent snapshot."""
        ...

    def apply(self, transaction: Transaction) -> bool:
        """Add the transaction to its entities' state, once: False (and no change) if its id was applied before,
        or if it is older than ``now - horizon - grace`` (it could change no feature scored from now on)."""
        ...

    def apply_label(self, tx_id: str, label: int, label_time: float) -> None:
        """Record a transaction's label, known from ``label_time`` on; idempotent, and may precede the transaction."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def member(transaction: Transaction) -> str:
    """A stored event as JSON text (floats keep every digit): ``[tx_id, event_time, amount, keys]``."""
    return json.dumps([transaction.tx_id, transaction.event_time, transaction.amount, dict(transaction.keys)])


def event_of(text: str, label: str | None) -> StoredEvent:
    """A stored event back from ``member`` text and its label text (``member_label``), or None if unknown."""
    tx_id, event_time, amount, keys = json.loads(text)
    if label is None:
        return StoredEvent(tx_id=tx_id, event_time=event_time, amount=amount, keys=keys)
    value, label_time = json.loads(label)
    return StoredEvent(tx_id=tx_id, event_time=event_time, amount=amount, keys=keys, label=value, label_time=label_time)


def label_text(label: int, label_time: float) -> str:
    """A label as stored: ``[label, label_time]``."""
    if label not in (0, 1) or not math.isfinite(label_time):
        raise ValueError(f"a label is 0 or 1 with a finite label_time, got label={label!r}, label_time={label_time!r}")
    return json.dumps([int(label), float(label_time)])


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
  role TEXT NOT NULL, key TEXT NOT NULL, tx_id TEXT NOT NULL, event_time REAL NOT NULL, body TEXT NOT NULL,
  PRIMARY KEY (role, key, tx_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_time ON events (event_time);
CREATE TABLE IF NOT EXISTS applied (tx_id TEXT PRIMARY KEY, event_time REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS applied_by_time ON applied (event_time);
CREATE TABLE IF NOT EXISTS labels (tx_id TEXT PRIMARY KEY, label_time REAL NOT NULL, body TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS labels_by_time ON labels (label_time);
CREATE TABLE IF NOT EXISTS clock (id INTEGER PRIMARY KEY CHECK (id = 0), now REAL NOT NULL);
"""


class SQLiteStateStore:
    """The embedded store: one SQLite file in WAL mode; one writer process and any number of reader processes.

    A reader (``readonly=True``) never creates the file: a missing or unreadable file raises ``StoreUnavailable``.
    """

    def __init__(self, path: str | Path, horizon: float, grace: float = GRACE, readonly: bool = False) -> None:
        self.path = Path(path)
        self.retained = float(horizon) + float(grace)
        self._lock = threading.Lock()
        try:
            if readonly:
                uri = f"file:{self.path.resolve()}?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
                self._conn.execute("SELECT 1 FROM applied LIMIT 1")
            else:
                self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.executescript(_SCHEMA)
            self._conn.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as error:
            raise StoreUnavailable(f"the embedded feature store at {self.path} cannot be opened: {error}") from error

    def read(self, keys: Mapping[str, str]) -> dict[str, EntityState]:
        """Each role's state, read in one transaction (a consistent snapshot beside a committing writer)."""
        query = (
            "SELECT e.body, l.body FROM events e LEFT JOIN labels l ON l.tx_id = e.tx_id "
            "WHERE e.role = ? AND e.key = ? ORDER BY e.event_time"
        )
        with self._lock, self._transaction("BEGIN"):
            return {
                role: EntityState(
                    tuple(event_of(body, label) for body, label in self._conn.execute(query, (role, key)))
                )
                for role, key in keys.items()
            }

    def apply(self, transaction: Transaction) -> bool:
        """Record the id, add the events and trim what fell out of the horizon, in one transaction."""
        time = transaction.event_time
        with self._lock, self._transaction("BEGIN IMMEDIATE"):
            row = self._conn.execute("SELECT now FROM clock WHERE id = 0").fetchone()
            now = max(time, row[0]) if row else time
            cutoff = now - self.retained
            if time < cutoff:
                return False
            inserted = self._conn.execute(
                "INSERT OR IGNORE INTO applied (tx_id, event_time) VALUES (?, ?)", (transaction.tx_id, time)
            )
            if inserted.rowcount == 0:
                return False
            body = member(transaction)
            self._conn.executemany(
                "INSERT INTO events (role, key, tx_id, event_time, body) VALUES (?, ?, ?, ?, ?)",
                [(role, key, transaction.tx_id, time, body) for role, key in transaction.keys.items()],
            )
            self._conn.execute("INSERT OR REPLACE INTO clock (id, now) VALUES (0, ?)", (now,))
            for table, column in (("events", "event_time"), ("applied", "event_time"), ("labels", "label_time")):
                self._conn.execute(f"DELETE FROM {table} WHERE {column} < ?", (cutoff,))
            return True

    def apply_label(self, tx_id: str, label: int, label_time: float) -> None:
        """Insert or replace the transaction's label."""
        body = label_text(label, label_time)
        with self._lock, self._transaction("BEGIN IMMEDIATE"):
            self._conn.execute(
                "INSERT OR REPLACE INTO labels (tx_id, label_time, body) VALUES (?, ?, ?)", (tx_id, label_time, body)
            )

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def _transaction(self, begin: str) -> _Transaction:
        return _Transaction(self._conn, begin, self.path)


class _Transaction:
    """BEGIN ... COMMIT (ROLLBACK on error); SQLite errors become ``StoreUnavailable`` naming the file."""

    def __init__(self, conn: sqlite3.Connection, begin: str, path: Path) -> None:
        self.conn, self.begin, self.path = conn, begin, path

    def __enter__(self) -> None:
        try:
            self.conn.execute(self.begin)
        except sqlite3.Error as error:
            raise StoreUnavailable(f"the embedded feature store at {self.path} failed: {error}") from error

    def __exit__(self, kind: object, error: BaseException | None, trace: object) -> None:
        if error is None:
            try:
                self.conn.execute("COMMIT")
            except sqlite3.Error as failure:
                raise StoreUnavailable(f"the embedded feature store at {self.path} failed: {failure}") from failure
            return
        self.conn.execute("ROLLBACK")
        if isinstance(error, sqlite3.Error):
            raise StoreUnavailable(f"the embedded feature store at {self.path} failed: {error}") from error
