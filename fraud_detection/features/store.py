"""The entity-state store: what the online lookup reads, and what the stream applies exactly once.

``EntityStateStore`` is the protocol; ``SQLiteStateStore`` is the embedded default and
``fraud_detection.features.redis_store.RedisStateStore`` the production one. Both keep, per entity, the events
of the last ``horizon + grace`` seconds behind the latest applied event time ("now"), plus the labels by
transaction id. ``horizon`` is ``FeatureSet.horizon``; ``grace`` (default a day) keeps enough for a transaction
redelivered up to that long after "now" to be scored again exactly. Both apply a transaction in one atomic
step that also records its id, so applying it again (a redelivery after a kill -9 before the offset commit)
changes nothing. ``apply_many`` makes a whole batch one such step (one SQLite transaction and commit, one Lua
call) and leaves the store exactly as the batch's applies one by one would; ``read_many`` reads a batch's
entities in one round trip. The stream applies and reads a batch in one such step (``apply_and_read``); the predictor
applies and reads one transaction at a time.

Reads are incremental. Every change to an entity's events (an apply, a label) carries the store's next
sequence number; a reader keeps each entity it read recently (``StateCache``, in
:mod:`fraud_detection.features.cache`) and asks only for the changes after the last one it saw, plus "now"
(events older than ``now - horizon - grace`` are masked in the cache, and gone from the store or about to go). A
busy entity's thousands of events are then parsed once per reader process, not on every lookup, and the state it
returns is the store's state, event for event. The embedded store writes one row per entity per write, not one per
event (``sqlite_layout.SCHEMA``), and its writer's cache takes its own writes directly.

Why SQLite for the embedded store: one writer process (the stream) and reader processes (the predictor) must
share it without a server. SQLite in WAL mode gives readers a consistent snapshot while the writer commits, and
its transactions make "record the id and add the events" one step; a dict with a file would need its own
locking and crash safety. The writer commits with ``synchronous=NORMAL``: no fsync per commit, yet a commit
survives the process being killed (it is in the WAL file); an OS crash or power loss may roll back the last
commits (those transactions then miss from the state), never count one twice.
"""

from __future__ import annotations

import json
import math
import sqlite3
import threading
from collections.abc import Iterable, Mapping, Sequence
from pathlib import Path
from typing import Protocol

import orjson

from fraud_detection.features.cache import StateCache, label_of
from fraud_detection.features.definitions import GRACE
from fraud_detection.features.gathered import Entity, Gathered
from fraud_detection.features.online import EntityState, Transaction
from fraud_detection.features.sqlite_layout import SCHEMA, items_text, parsed_items
from fraud_detection.features.table import Parsed

Progress = Mapping[tuple[str, int], int]
"""How far the stream's writer got: the offset after the last message applied, by ``(topic, partition)``."""


class StoreUnavailable(RuntimeError):
    """The state store cannot be reached or opened; the message names its address. Never read as empty state."""


class EntityStateStore(Protocol):
    """Per-entity recent events and labels, read by the lookup and written by the stream."""

    def read(self, keys: Mapping[str, str]) -> dict[str, EntityState]:
        """The state of each entity, by role (``{"card": "c1", "terminal": "t9"}``), as one consistent snapshot."""
        ...

    def read_many(self, entities: Iterable[Entity]) -> dict[Entity, EntityState]:
        """The state of each ``(role, key)``, in one round trip and one consistent snapshot."""
        ...

    def read_batch(self, entities: Iterable[Entity]) -> Gathered:
        """``read_many``'s states, gathered a role at a time (:class:`~fraud_detection.features.gathered.Gathered`)."""
        ...

    def apply(self, transaction: Transaction) -> bool:
        """Add the transaction to its entities' state, once: False (and no change) if its id was applied before,
        or if it is older than ``now - horizon - grace`` (it could change no feature scored from now on)."""
        ...

    def apply_many(self, transactions: Sequence[Transaction], progress: Progress | None = None) -> list[bool]:
        """``apply`` each transaction in order, as one atomic step (one round trip): the store ends as the applies
        one by one would leave it, and a batch applied again changes nothing. Which of them were applied.

        ``progress`` (the stream's): the offset after the batch's last message of each ``(topic, partition)``,
        recorded in the same step (an offset never moves back), for :meth:`progress`; a batch of nothing to apply
        (every message a reject) still records it."""
        ...

    def progress(self, topic: str) -> dict[int, int]:
        """How far the stream's writer has applied ``topic``: the offset after its last applied message, by
        partition."""
        ...

    def latest_time(self) -> float | None:
        """The latest applied event time ("now"), None before any apply."""
        ...

    def apply_and_read(
        self, transactions: Sequence[Transaction], progress: Progress | None = None
    ) -> tuple[list[bool], Gathered]:
        """``apply_many`` (``progress`` too), and the state of each entity of the batch, in the same atomic step: the
        events it held before the batch (at or after that "now" less the retained span: the batch's own applies trim
        nothing from it), then those the batch added. Every transaction's windows in a batch applied so find what
        they reach, however long the batch spans."""
        ...

    def apply_label(self, tx_id: str, label: int, label_time: float) -> None:
        """Record a transaction's label, known from ``label_time`` on; idempotent, and may precede the transaction."""
        ...

    def close(self) -> None:
        """Release the connection."""
        ...


def _fields(transaction: Transaction) -> tuple[str, float, float, dict[str, str]]:
    """A stored event's fields, as plain Python (orjson takes no numpy text or floats): id, time, amount, keys."""
    keys = {str(role): str(key) for role, key in transaction.keys.items()}
    return str(transaction.tx_id), float(transaction.event_time), float(transaction.amount), keys


def member(transaction: Transaction) -> str:
    """A stored event as JSON text (floats keep every digit): ``[tx_id, event_time, amount, keys]``."""
    return orjson.dumps(_fields(transaction)).decode()


def entities_of(transactions: Sequence[Transaction]) -> list[Entity]:
    """Every ``(role, key)`` of ``transactions``, once each, in order of first appearance."""
    return list(dict.fromkeys(entity for transaction in transactions for entity in transaction.keys.items()))


def own_events(added: Iterable[tuple[Transaction, str | None, int]]) -> list[Parsed]:
    """The events a writer added, in the order applied, as a reader parses them from the store (``member``'s JSON):
    each applied transaction with the label text it was stored with and its sequence number."""
    return [(*_fields(transaction), *label_of(label), seq) for transaction, label, seq in added]


def label_text(label: int, label_time: float) -> str:
    """A label as stored: ``[label, label_time]``."""
    if label not in (0, 1) or not math.isfinite(label_time):
        raise ValueError(f"a label is 0 or 1 with a finite label_time, got label={label!r}, label_time={label_time!r}")
    return json.dumps([int(label), float(label_time)])


_CHUNK = 300
"""Entities or ids per SQL statement (3 parameters each at most, well under SQLite's variable limit)."""


class SQLiteStateStore:
    """The embedded store: one SQLite file in WAL mode; one writer process and any number of reader processes.

    A reader (``readonly=True``) never creates the file: a missing or unreadable file raises ``StoreUnavailable``.
    """

    def __init__(self, path: str | Path, horizon: float, grace: float = GRACE, readonly: bool = False) -> None:
        self.path = Path(path)
        self.retained = float(horizon) + float(grace)
        self._lock = threading.Lock()
        self._cache = StateCache()
        self._current: int | None = None
        """The clock's sequence number after this connection's last write, while its cache has held every change
        up to there of each entity it holds (every write since was its own and merged into the cache): the next
        ``apply_and_read`` then asks the file only for the entities the cache does not hold."""
        try:
            if readonly:
                uri = f"file:{self.path.resolve()}?mode=ro"
                self._conn = sqlite3.connect(uri, uri=True, isolation_level=None, check_same_thread=False)
                self._conn.execute("SELECT 1 FROM applied LIMIT 1")
            else:
                self._conn = sqlite3.connect(self.path, isolation_level=None, check_same_thread=False)
                if self._conn.execute("PRAGMA journal_mode=WAL").fetchone()[0] == "wal":
                    # A commit is in the WAL file when it returns (a killed process loses nothing); only the OS
                    # crashing or the power failing may lose the last commits, never apply one twice.
                    self._conn.execute("PRAGMA synchronous=NORMAL")
            older = bool(self._conn.execute("PRAGMA table_info(events)").fetchall())
            if not readonly and not older:
                self._conn.executescript(SCHEMA)
            self._conn.execute("PRAGMA busy_timeout=5000")
        except sqlite3.Error as error:
            raise StoreUnavailable(f"the embedded feature store at {self.path} cannot be opened: {error}") from error
        if older:
            self._conn.close()
            raise StoreUnavailable(
                f"the embedded feature store at {self.path} has an older layout (a row per event); "
                "remove the file and replay the transactions"
            )

    def read(self, keys: Mapping[str, str]) -> dict[str, EntityState]:
        """Each role's state, as :meth:`read_many` reads it."""
        states = self.read_many(keys.items())
        return {role: states[(role, key)] for role, key in keys.items()}

    def read_many(self, entities: Iterable[Entity]) -> dict[Entity, EntityState]:
        """Each entity's state, read in one transaction (a consistent snapshot beside a committing writer) by one
        query per ``_CHUNK`` entities: only the changes after what this reader already holds, applied to its cache."""
        wanted = list(dict.fromkeys(entities))
        with self._lock:
            cutoff = self._caught_up(wanted)
            return {entity: self._cache.state(*entity, cutoff) for entity in wanted}

    def read_batch(self, entities: Iterable[Entity]) -> Gathered:
        """``read_many``'s states, gathered a role at a time (what the stream's batch features read)."""
        wanted = list(dict.fromkeys(entities))
        with self._lock:
            return self._cache.gathered(wanted, self._caught_up(wanted))

    def _caught_up(self, wanted: Sequence[Entity]) -> float:
        """Bring the cache's ``wanted`` up to the store in one transaction (a consistent snapshot beside a committing
        writer); the cutoff of the store's "now" (under the lock)."""
        with self._transaction("BEGIN"):
            now, latest = self._conn.execute("SELECT now, seq FROM clock WHERE id = 0").fetchone()
            for entity, found in self._changes(wanted, latest).items():
                self._cache.merge(*entity, found)
        return -math.inf if now is None else now - self.retained

    def _changes(self, wanted: Sequence[Entity], latest: int) -> dict[Entity, list[Parsed]]:
        """The changed events of each of ``wanted`` after the last change the cache holds, up to the store's
        ``latest`` (inside a transaction), in the order they changed; only the entities with any."""
        changes: dict[Entity, list[Parsed]] = {}
        for at in range(0, len(wanted), _CHUNK):
            chunk = wanted[at : at + _CHUNK]
            values = ", ".join(["(?, ?, ?)"] * len(chunk))
            query = (
                f"WITH wanted (role, key, seen) AS (VALUES {values}) SELECT c.role, c.key, c.body "
                "FROM wanted CROSS JOIN changes AS c ON c.role = wanted.role AND c.key = wanted.key "
                "AND c.seq > wanted.seen"
            )
            params = [p for role, key in chunk for p in (role, key, self._cache.seen(role, key, latest))]
            for role, key, body in self._conn.execute(query, params):
                changes.setdefault((role, key), []).extend(parsed_items(body))
        return changes

    def apply(self, transaction: Transaction) -> bool:
        """Record the id, add the events (with a label that came first) and trim what fell out of the horizon, in
        one transaction."""
        return self.apply_many([transaction])[0]

    def apply_many(self, transactions: Sequence[Transaction], progress: Progress | None = None) -> list[bool]:
        """The batch's applies in one transaction (one commit): the ids, labels and clock are read once, each
        transaction is decided in order as its own ``apply`` would be, then the accepted ones are written by
        ``executemany`` and what fell out of the horizon is trimmed once; ``progress`` is recorded in it."""
        if not transactions and not progress:
            return []
        with self._lock, self._transaction("BEGIN IMMEDIATE"):
            self._current = None  # its rows are not merged into the cache
            now, seq = self._conn.execute("SELECT now, seq FROM clock WHERE id = 0").fetchone()
            done = self._write(transactions, now, seq)[0]
            self._record(progress)
            return done

    def _record(self, progress: Progress | None) -> None:
        """Move each partition's progress forward (inside a writing transaction)."""
        if progress:
            self._conn.executemany(
                "INSERT INTO progress (topic, partition, next_offset) VALUES (?, ?, ?) ON CONFLICT DO UPDATE "
                "SET next_offset = max(next_offset, excluded.next_offset)",
                [(topic, partition, offset) for (topic, partition), offset in progress.items()],
            )

    def latest_time(self) -> float | None:
        """``EntityStateStore.latest_time``, from the clock."""
        with self._lock, self._transaction("BEGIN"):
            return self._conn.execute("SELECT now FROM clock WHERE id = 0").fetchone()[0]

    def progress(self, topic: str) -> dict[int, int]:
        """``EntityStateStore.progress``: nothing before a writer recorded any (or in a file of a layout without it)."""
        with self._lock, self._transaction("BEGIN"):
            try:
                found = self._conn.execute("SELECT partition, next_offset FROM progress WHERE topic = ?", (topic,))
            except sqlite3.OperationalError as error:
                if "no such table" not in str(error):
                    raise
                return {}
            return dict(found.fetchall())

    def apply_and_read(
        self, transactions: Sequence[Transaction], progress: Progress | None = None
    ) -> tuple[list[bool], Gathered]:
        """``apply_many``, and each entity of the batch read in the same transaction (see ``EntityStateStore``): the
        cache is brought up to the store as it was before the batch (only the entities it does not hold, while every
        write since it was filled was this connection's own), then takes the rows the batch adds."""
        if not transactions:
            return self.apply_many([], progress), Gathered({})
        wanted = entities_of(transactions)
        with self._lock:
            try:
                with self._transaction("BEGIN IMMEDIATE"):
                    now, seq = self._conn.execute("SELECT now, seq FROM clock WHERE id = 0").fetchone()
                    current = self._current == seq or self._cache.empty()
                    asked = [entity for entity in wanted if not self._cache.holds(entity)] if current else wanted
                    for entity, found in self._changes(asked, seq).items():
                        self._cache.merge(*entity, found)
                    done, added = self._write(transactions, now, seq)
                    self._record(progress)
            except BaseException:
                self._current = None
                self._cache.forget(wanted)  # it may hold rows of a batch that was rolled back
                raise
            self._cache.add(added)
            self._current = seq + sum(done) if current else None
            cutoff = -math.inf if now is None else now - self.retained
            return done, self._cache.gathered(wanted, cutoff)

    def _write(
        self, transactions: Sequence[Transaction], now: float | None, seq: int
    ) -> tuple[list[bool], list[Parsed]]:
        """``apply_many``'s work inside its transaction, from the clock's ``now`` and ``seq``: which transactions
        were applied, and the events added, in order, as a reader parses them (one ``changes`` row an entity)."""
        ids = list(dict.fromkeys(t.tx_id for t in transactions))
        applied: dict[str, float] = dict(self._select("SELECT tx_id, event_time FROM applied", ids))
        found = self._select("SELECT tx_id, label_time, body FROM labels", ids)
        labels = {tx_id: (time, body) for tx_id, time, body in found}
        trimmed = -math.inf  # what the batch's earlier applies would have trimmed by now
        retained, unknown = self.retained, label_of(None)
        done: list[bool] = []
        added: list[Parsed] = []
        accepted: list[tuple[str, float, int]] = []
        by_entity: dict[Entity, list[Parsed]] = {}
        numbers: dict[Entity, int] = {}  # each entity's row, in the order ``by_entity`` lists them
        first = self._next_change_id()
        for transaction in transactions:
            time, tx_id = transaction.event_time, transaction.tx_id
            moved = time if now is None or time > now else now
            before = applied.get(tx_id)
            if time < moved - retained or (before is not None and before >= trimmed):
                done.append(False)
                continue
            label = labels.get(tx_id) if labels else None
            known = label_of(label[1]) if label is not None and label[0] >= trimmed else unknown
            now, seq, trimmed, applied[tx_id] = moved, seq + 1, moved - retained, time
            keys = {str(role): str(key) for role, key in transaction.keys.items()}  # as ``_fields`` (inlined: per row)
            event: Parsed = (str(tx_id), float(time), float(transaction.amount), keys, *known, seq)
            added.append(event)
            at = -1  # the row of its first entity (0: none, it has no keys)
            for entity in keys.items():
                events = by_entity.get(entity)
                if events is None:
                    events = by_entity[entity] = []
                    numbers[entity] = len(numbers)
                events.append(event)
                if at < 0:
                    at = first + numbers[entity]
            accepted.append((tx_id, event[1], max(at, 0)))
            done.append(True)
        if accepted:
            self._conn.executemany("INSERT OR REPLACE INTO applied (tx_id, event_time, at) VALUES (?, ?, ?)", accepted)
            self._insert_changes(by_entity, first)
            self._conn.execute("UPDATE clock SET now = ?, seq = ? WHERE id = 0", (now, seq))
            for table, column in (("changes", "latest"), ("applied", "event_time"), ("labels", "label_time")):
                self._conn.execute(f"DELETE FROM {table} WHERE {column} < ?", (trimmed,))
        return done, added

    def _next_change_id(self) -> int:
        """The id the next ``changes`` row gets (inside a writing transaction)."""
        return int(self._conn.execute("SELECT coalesce(max(id), 0) + 1 FROM changes").fetchone()[0])

    def _insert_changes(self, by_entity: Mapping[Entity, Sequence[Parsed]], first: int) -> None:
        """One ``changes`` row for each entity's events (in sequence order), with ids from ``first`` on."""
        self._conn.executemany(
            "INSERT INTO changes (id, role, key, seq, latest, body) VALUES (?, ?, ?, ?, ?, ?)",
            [
                (
                    first + number,
                    role,
                    key,
                    events[-1][6],
                    events[0][1] if len(events) == 1 else max(e[1] for e in events),
                    items_text(events),
                )
                for number, ((role, key), events) in enumerate(by_entity.items())
            ],
        )

    def apply_label(self, tx_id: str, label: int, label_time: float) -> None:
        """Insert or replace the transaction's label, and, if it is applied, add its event again with the label to
        each of its entities' changes (and to the cache's, while it holds every change)."""
        body = label_text(label, label_time)
        labelled: dict[Entity, list[Parsed]] = {}
        with self._lock:
            try:
                with self._transaction("BEGIN IMMEDIATE"):
                    self._conn.execute(
                        "INSERT OR REPLACE INTO labels (tx_id, label_time, body) VALUES (?, ?, ?)",
                        (tx_id, label_time, body),
                    )
                    (seq,) = self._conn.execute("UPDATE clock SET seq = seq + 1 WHERE id = 0 RETURNING seq").fetchone()
                    held = self._conn.execute(
                        "SELECT c.body FROM applied AS a JOIN changes AS c ON c.id = a.at WHERE a.tx_id = ?", (tx_id,)
                    ).fetchone()
                    events = [event for event in parsed_items(held[0]) if event[0] == tx_id] if held else []
                    if events:
                        event_id, time, amount, keys = events[-1][:4]
                        event: Parsed = (event_id, time, amount, keys, int(label), float(label_time), seq)
                        labelled = {entity: [event] for entity in keys.items()}
                        self._insert_changes(labelled, self._next_change_id())
            except BaseException:
                self._current = None
                raise
            if self._current != seq - 1:
                self._current = None  # another writer came between: the cache learns of the label by reading
                return
            for entity, each in labelled.items():
                if self._cache.holds(entity):
                    self._cache.merge(*entity, each)
            self._current = seq

    def close(self) -> None:
        """Close the connection."""
        self._conn.close()

    def _select(self, query: str, ids: list[str]) -> list[tuple]:
        """``query``'s rows for the transaction ids ``ids`` (``WHERE tx_id IN``, ``_CHUNK`` ids a statement)."""
        found: list[tuple] = []
        for at in range(0, len(ids), _CHUNK):
            chunk = ids[at : at + _CHUNK]
            found += self._conn.execute(f"{query} WHERE tx_id IN ({', '.join('?' * len(chunk))})", chunk).fetchall()
        return found

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
