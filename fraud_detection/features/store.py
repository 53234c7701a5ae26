"""The entity-state store: what the online lookup reads, and what the stream applies exactly once.

``EntityStateStore`` is the protocol; ``SQLiteStateStore`` is the embedded default and
``fraud_detection.features.redis_store.RedisStateStore`` the production one. Both keep, per entity, the events
of the last ``horizon + grace`` seconds behind the latest applied event time ("now"), plus the labels by
transaction id. ``horizon`` is ``FeatureSet.horizon``; ``grace`` (default a day) keeps enough for a transaction
redelivered up to that long after "now" to be scored again exactly. Both apply a transaction in one atomic
step that also records its id, so applying it again (a redelivery after a kill -9 before the offset commit)
changes nothing.

Reads are incremental. Every change to an entity's events (an apply, a label) carries the store's next
sequence number; a reader keeps each entity it read recently (``StateCache``) and asks only for the changes
after the last one it saw, plus "now" (events older than ``now - horizon - grace`` are gone from the store and
are masked in the cache). A busy entity's thousands of events are then parsed once per reader process, not on
every lookup, and the state it returns is the store's state, event for event.

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
from collections import OrderedDict
from collections.abc import Iterable, Mapping
from pathlib import Path
from typing import Protocol

import numpy as np

from fraud_detection.features.online import EntityState, Transaction

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


def label_of(label: str | None) -> tuple[int, float]:
    """A label and its time from ``label_text``; ``(0, inf)`` while unknown."""
    if label is None:
        return 0, math.inf
    value, label_time = json.loads(label)
    return int(value), float(label_time)


def label_text(label: int, label_time: float) -> str:
    """A label as stored: ``[label, label_time]``."""
    if label not in (0, 1) or not math.isfinite(label_time):
        raise ValueError(f"a label is 0 or 1 with a finite label_time, got label={label!r}, label_time={label_time!r}")
    return json.dumps([int(label), float(label_time)])


Change = tuple[str, str | None, int]
"""One changed event as a store hands it to a reader: (``member`` text, ``label_text`` or None, sequence number)."""


class _Entity:
    """One cached entity: its events as growable columns, and the last change it has seen."""

    def __init__(self) -> None:
        self.seen = 0
        self.size = 0
        self.row: dict[str, int] = {}
        self.tx_id = np.empty(16, dtype=object)
        self.time, self.amount, self.label_time = np.empty(16), np.empty(16), np.empty(16)
        self.label, self.changed = np.empty(16, dtype=np.int64), np.empty(16, dtype=np.int64)
        self.codes: dict[str, np.ndarray] = {}
        self.code_of: dict[str, dict[str, int]] = {}

    def update(self, changes: Iterable[Change]) -> None:
        """Append new events (in one block), and replace the label of events already held unless the change is
        older than the one held (two threads' reads may be applied out of order)."""
        new: list[tuple[str, float, float, Mapping[str, str], int, float, int]] = []
        for text, label_body, seq in changes:
            self.seen = max(self.seen, seq)
            tx_id, event_time, amount, keys = json.loads(text)
            at = self.row.get(tx_id)
            if at is None:
                new.append((tx_id, float(event_time), float(amount), keys, *label_of(label_body), seq))
            elif self.changed[at] < seq:
                self.label[at], self.label_time[at] = label_of(label_body)
                self.changed[at] = seq
        if new:
            self._extend(new)

    def state(self, cutoff: float) -> EntityState:
        """The events at or after ``cutoff`` (the store's own trim); drops the rest once they are half the rows."""
        live = self.time[: self.size] >= cutoff
        if self.size > 64 and 2 * int(live.sum()) < self.size:
            self._compact(live)
            live = np.ones(self.size, dtype=bool)
        return EntityState(
            tx_id=self.tx_id[: self.size][live],
            time=self.time[: self.size][live],
            amount=self.amount[: self.size][live],
            label=self.label[: self.size][live],
            label_time=self.label_time[: self.size][live],
            keys={role: codes[: self.size][live] for role, codes in self.codes.items()},
            names={role: list(code_of) for role, code_of in self.code_of.items()},
        )

    def _extend(self, new: list[tuple[str, float, float, Mapping[str, str], int, float, int]]) -> None:
        start, stop = self.size, self.size + len(new)
        if stop > len(self.time):
            self._resize(max(2 * len(self.time), stop))
        tx_ids, times, amounts, keys, labels, label_times, changed = zip(*new, strict=True)
        self.tx_id[start:stop], self.time[start:stop], self.amount[start:stop] = tx_ids, times, amounts
        self.label[start:stop], self.label_time[start:stop], self.changed[start:stop] = labels, label_times, changed
        self.row.update(zip(tx_ids, range(start, stop), strict=True))
        for role in {role for event_keys in keys for role in event_keys} - self.codes.keys():
            self.codes[role] = np.zeros(len(self.time), dtype=np.int64)  # code 0 is "": no key of that role
            self.code_of[role] = {"": 0}
        for role, codes in self.codes.items():
            code_of = self.code_of[role]
            codes[start:stop] = [code_of.setdefault(str(k.get(role, "")), len(code_of)) for k in keys]
        self.size = stop

    def _resize(self, capacity: int) -> None:
        for name in ("tx_id", "time", "amount", "label", "label_time", "changed"):
            old = getattr(self, name)
            new = np.empty(capacity, dtype=old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)
        for role, old in self.codes.items():
            self.codes[role] = np.zeros(capacity, dtype=np.int64)
            self.codes[role][: self.size] = old[: self.size]

    def _compact(self, live: np.ndarray) -> None:
        for name in ("tx_id", "time", "amount", "label", "label_time", "changed"):
            setattr(self, name, getattr(self, name)[: self.size][live].copy())
        self.codes = {role: codes[: self.size][live].copy() for role, codes in self.codes.items()}
        self.size = int(live.sum())
        self.row = {str(tx_id): at for at, tx_id in enumerate(self.tx_id)}
        self._resize(max(16, 2 * self.size))


class StateCache:
    """A reader's recently read entities (least recently read dropped beyond ``max_entities``), kept current from
    the store's changes."""

    def __init__(self, max_entities: int = 50_000) -> None:
        self.max_entities = max_entities
        self._entities: OrderedDict[tuple[str, str], _Entity] = OrderedDict()

    def seen(self, role: str, key: str, latest: float = math.inf) -> int:
        """The last change held for the entity (0: none); forgets it if the store's ``latest`` is older (a new
        store under the same name)."""
        entity = self._entities.get((role, key))
        if entity is None:
            return 0
        if entity.seen > latest:
            del self._entities[(role, key)]
            return 0
        return entity.seen

    def state(self, role: str, key: str, changes: Iterable[Change], cutoff: float) -> EntityState:
        """The entity's state once ``changes`` (those after ``seen``) are applied to what is held."""
        entity = self._entities.pop((role, key), None) or _Entity()
        entity.update(changes)
        self._entities[(role, key)] = entity
        while len(self._entities) > self.max_entities:
            self._entities.popitem(last=False)
        return entity.state(cutoff)


_SCHEMA = """
CREATE TABLE IF NOT EXISTS events (
  role TEXT NOT NULL, key TEXT NOT NULL, tx_id TEXT NOT NULL, event_time REAL NOT NULL, body TEXT NOT NULL,
  label TEXT, seq INTEGER NOT NULL, PRIMARY KEY (role, key, tx_id)) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS events_by_time ON events (event_time);
CREATE INDEX IF NOT EXISTS events_by_change ON events (role, key, seq);
CREATE INDEX IF NOT EXISTS events_by_id ON events (tx_id);
CREATE TABLE IF NOT EXISTS applied (tx_id TEXT PRIMARY KEY, event_time REAL NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS applied_by_time ON applied (event_time);
CREATE TABLE IF NOT EXISTS labels (tx_id TEXT PRIMARY KEY, label_time REAL NOT NULL, body TEXT NOT NULL) WITHOUT ROWID;
CREATE INDEX IF NOT EXISTS labels_by_time ON labels (label_time);
CREATE TABLE IF NOT EXISTS clock (id INTEGER PRIMARY KEY CHECK (id = 0), now REAL, seq INTEGER NOT NULL);
INSERT OR IGNORE INTO clock (id, now, seq) VALUES (0, NULL, 0);
"""
"""``events`` holds one row per (role, key, transaction) with its label text once known and ``seq``, the
sequence number of its last change; ``clock`` holds "now" and the latest sequence number."""


class SQLiteStateStore:
    """The embedded store: one SQLite file in WAL mode; one writer process and any number of reader processes.

    A reader (``readonly=True``) never creates the file: a missing or unreadable file raises ``StoreUnavailable``.
    """

    def __init__(self, path: str | Path, horizon: float, grace: float = GRACE, readonly: bool = False) -> None:
        self.path = Path(path)
        self.retained = float(horizon) + float(grace)
        self._lock = threading.Lock()
        self._cache = StateCache()
        try:
            if readonly:
                uri = f"file:{self.path.resolve()}?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
                self._conn.execute("SELECT 1 FROM applied LIMIT 1")
            else:
                self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                self._conn.execute("PRAGMA journal_mode=WAL")
                self._conn.execute("PRAGMA synchronous=NORMAL")  # WAL: no fsync a commit; a killed process loses none
            columns = {row[1] for row in self._conn.execute("PRAGMA table_info(events)")}
            if not readonly and (not columns or "seq" in columns):
                self._conn.executescript(_SCHEMA)
            self._conn.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as error:
            raise StoreUnavailable(f"the embedded feature store at {self.path} cannot be opened: {error}") from error
        if columns and "seq" not in columns:
            self._conn.close()
            raise StoreUnavailable(
                f"the embedded feature store at {self.path} has an older layout (no change sequence); "
                "remove the file and replay the transactions"
            )

    def read(self, keys: Mapping[str, str]) -> dict[str, EntityState]:
        """Each role's state, read in one transaction (a consistent snapshot beside a committing writer): only the
        changes after what this reader already holds, applied to its cache."""
        query = "SELECT body, label, seq FROM events WHERE role = ? AND key = ? AND seq > ?"
        with self._lock, self._transaction("BEGIN"):
            now, latest = self._conn.execute("SELECT now, seq FROM clock WHERE id = 0").fetchone()
            cutoff = -math.inf if now is None else now - self.retained
            return {
                role: self._cache.state(
                    role, key, self._conn.execute(query, (role, key, self._cache.seen(role, key, latest))), cutoff
                )
                for role, key in keys.items()
            }

    def apply(self, transaction: Transaction) -> bool:
        """Record the id, add the events (with a label that came first) and trim what fell out of the horizon, in
        one transaction."""
        time = transaction.event_time
        with self._lock, self._transaction("BEGIN IMMEDIATE"):
            before, seq = self._conn.execute("SELECT now, seq FROM clock WHERE id = 0").fetchone()
            now = time if before is None else max(time, before)
            cutoff = now - self.retained
            if time < cutoff:
                return False
            inserted = self._conn.execute(
                "INSERT OR IGNORE INTO applied (tx_id, event_time) VALUES (?, ?)", (transaction.tx_id, time)
            )
            if inserted.rowcount == 0:
                return False
            body, seq = member(transaction), seq + 1
            label = self._conn.execute("SELECT body FROM labels WHERE tx_id = ?", (transaction.tx_id,)).fetchone()
            self._conn.executemany(
                "INSERT INTO events (role, key, tx_id, event_time, body, label, seq) VALUES (?, ?, ?, ?, ?, ?, ?)",
                [
                    (role, key, transaction.tx_id, time, body, label[0] if label else None, seq)
                    for role, key in transaction.keys.items()
                ],
            )
            self._conn.execute("UPDATE clock SET now = ?, seq = ? WHERE id = 0", (now, seq))
            for table, column in (("events", "event_time"), ("applied", "event_time"), ("labels", "label_time")):
                self._conn.execute(f"DELETE FROM {table} WHERE {column} < ?", (cutoff,))
            return True

    def apply_label(self, tx_id: str, label: int, label_time: float) -> None:
        """Insert or replace the transaction's label, and mark its events changed."""
        body = label_text(label, label_time)
        with self._lock, self._transaction("BEGIN IMMEDIATE"):
            self._conn.execute(
                "INSERT OR REPLACE INTO labels (tx_id, label_time, body) VALUES (?, ?, ?)", (tx_id, label_time, body)
            )
            self._conn.execute("UPDATE clock SET seq = seq + 1 WHERE id = 0")
            self._conn.execute(
                "UPDATE events SET label = ?, seq = (SELECT seq FROM clock WHERE id = 0) WHERE tx_id = ?", (body, tx_id)
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
