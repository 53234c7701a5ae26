"""One role's cached events as rows of one set of columns (:class:`RoleTable`): what a reader's cache
(:mod:`fraud_detection.features.cache`) keeps a table of per role.

A table holds every cached event of its role, for all the role's entities, not a set of columns per entity. A batch's
events from a store's changes wait as pending rows and are appended in one step when next read; a writer's own new
events are appended a column at a time (:meth:`RoleTable.append`). A batch's history is gathered from the columns by
row number in one step. The layout before this one, a dozen small arrays per entity spread over the heap, cost the
stream more in the CPU's caches than in instructions (docs/streaming.md, "Speed with state updates").
"""

from __future__ import annotations

import itertools
import math
from collections.abc import Iterable, Mapping, Sequence

import numpy as np
import pandas as pd

from fraud_detection.features.online import EntityState

Parsed = tuple[str, float, float, Mapping[str, str], int, float, int]
"""A changed event, parsed: (id, event time, amount, keys by role, label, label time, sequence number)."""

Factorized = tuple[list[str], np.ndarray]
"""Keys factorized: the distinct ones (in order of first appearance), and each key's position among them."""


class Held:
    """One held entity of a table: its code, the rows of its events (in the order they came), the last change it has
    seen, when it was last read, and the state it last returned (kept while no change came and the cutoff keeps the
    same events: above the latest one it dropped, at or below the earliest one it kept)."""

    __slots__ = ("code", "last", "rows", "seen", "used")

    def __init__(self, code: int, used: int) -> None:
        self.code = code
        self.rows: list[int] = []
        self.seen = 0
        self.used = used
        self.last: tuple[float, float, EntityState] | None = None


_COLUMNS = ("tx_id", "time", "amount", "label_time", "entity", "label", "changed")
"""A table's per-row columns besides the key codes (``codes``, one per role, the table's own role too)."""


class RoleTable:
    """One role's cached events: every held entity's events as rows of one set of columns.

    An event is a row for as long as it is held: a new label or a new time changes the row in place. New events from
    a store's changes wait in ``pending`` (their row numbers given already) until the next read appends them all at
    once; a writer's own are appended at once (:meth:`append`). Rows older than every cutoff from now on and rows of
    entities no longer held are dropped at a read once the table has doubled since it was last compacted. States are
    gathered copies, so no change to the columns ever reaches a state handed out.
    """

    def __init__(self) -> None:
        self.size = 0
        self.pending: list[tuple[int, Parsed]] = []
        self.tx_id = np.empty(64, dtype=object)
        self.time, self.amount, self.label_time = np.empty(64), np.empty(64), np.empty(64)
        self.entity = np.empty(64, dtype=np.int64)
        self.label, self.changed = np.empty(64, dtype=np.int64), np.empty(64, dtype=np.int64)
        self.codes: dict[str, np.ndarray] = {}
        self.code_of: dict[str, dict[str, int]] = {}
        self.names: dict[str, list[str]] = {}  # each role's names by code (``code_of`` inverted; grows until compacted)
        self.row: dict[str, int] = {}  # each held event's row, by id
        self.moved: dict[tuple[int, str], int] = {}
        """The rows of ids that another entity of the role holds too, by (entity code, id): an id applied again,
        with other keys, after the store trimmed it (the first stays visible below the batch's own trims)."""
        self.held: dict[str, Held] = {}
        self.codes_given = 0  # entity codes handed out so far
        self.cutoff = -math.inf  # the latest cutoff read: no later read keeps an event before it
        self.compacted = 0  # rows kept by the last compaction

    def entity_of(self, key: str, used: int) -> Held:
        """The held entity ``key`` (held from now on if it was not), marked read at ``used``."""
        held = self.held.get(key)
        if held is None:
            held = self.held[key] = Held(self.codes_given, used)
            self.codes_given += 1
        else:
            held.used = used
        return held

    def merge(self, held: Held, events: Iterable[Parsed]) -> None:
        """Take ``held``'s changed events: a new one is appended; for one it holds already, unless the change is older
        than the one held (two threads' reads may be applied out of order), its label is replaced, or the whole event
        if its time or amount changed (its id applied again after the store trimmed the first)."""
        row, moved, pending, rows = self.row, self.moved, self.pending, held.rows
        seen, changed = held.seen, False
        for event in events:
            tx_id, seq = event[0], event[6]
            seen = seq if seq > seen else seen
            at = row.get(tx_id)
            if at is not None and self._at(at)[0] != held.code:  # the id is another entity's too
                at = moved.get((held.code, tx_id))
                if at is None:
                    moved[(held.code, tx_id)] = self.size + len(pending)
            elif at is None:
                row[tx_id] = self.size + len(pending)
            if at is None:
                rows.append(self.size + len(pending))
                pending.append((held.code, event))
                changed = True
                continue
            _, event_time, amount, last = self._at(at)
            if last < seq:
                self._set(at, event, whole=event_time != event[1] or amount != event[2])
                changed = True
        held.seen = seen
        if changed:
            held.last = None

    def _at(self, at: int) -> tuple[int, float, float, int]:
        """Row ``at``'s entity code, time, amount and last change."""
        if at >= self.size:
            code, event = self.pending[at - self.size]
            return code, event[1], event[2], event[6]
        return int(self.entity[at]), float(self.time[at]), float(self.amount[at]), int(self.changed[at])

    def _set(self, at: int, event: Parsed, whole: bool) -> None:
        """Put ``event`` in row ``at``: its label and last change, or (``whole``) everything but the entity."""
        if at >= self.size:
            code, held = self.pending[at - self.size]
            self.pending[at - self.size] = (code, event if whole else (*held[:4], *event[4:]))
            return
        _, event_time, amount, keys, self.label[at], self.label_time[at], self.changed[at] = event
        if whole:
            self.time[at], self.amount[at] = event_time, amount
            for role in keys.keys() - self.codes.keys():
                self._add_role(role)
            for role, codes in self.codes.items():
                codes[at] = _code(self.code_of[role], self.names[role], str(keys.get(role, "")))

    def flush(self) -> None:
        """Append the pending events to the columns, a slice a column."""
        if not self.pending:
            return
        entities, events = zip(*self.pending, strict=True)
        keys = [event[3] for event in events]
        start, stop = self._put(events, {role for event_keys in keys for role in event_keys})
        self.entity[start:stop] = entities
        for role, codes in self.codes.items():
            code_of, names = self.code_of[role], self.names[role]
            codes[start:stop] = [_code(code_of, names, str(k.get(role, ""))) for k in keys]
        self.size = stop
        self.pending.clear()

    def _put(self, events: Sequence[Parsed], roles: Iterable[str]) -> tuple[int, int]:
        """Write ``events`` as the next rows of every column but the entity and the key codes, with room made first
        and a code column for each of ``roles`` the table lacks (made after the room: it is as long as the rest); the
        new rows' start and stop. The table's size is the caller's to move."""
        start, stop = self.size, self.size + len(events)
        if stop > len(self.time):
            self._resize(max(2 * len(self.time), stop))
        tx_ids, times, amounts, _, labels, label_times, changed = zip(*events, strict=True)
        self.tx_id[start:stop], self.time[start:stop], self.amount[start:stop] = tx_ids, times, amounts
        self.label[start:stop], self.label_time[start:stop], self.changed[start:stop] = labels, label_times, changed
        for role in set(roles) - self.codes.keys():
            self._add_role(role)
        return start, stop

    def _add_role(self, role: str) -> None:
        """Codes for a role no event held had: every row so far gets code 0, ``""`` (no key of that role)."""
        self.codes[role] = np.zeros(len(self.time), dtype=np.int64)
        self.code_of[role], self.names[role] = {"": 0}, [""]

    def _resize(self, capacity: int) -> None:
        for name in _COLUMNS:
            old = getattr(self, name)
            new = np.empty(capacity, dtype=old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)
        for role, old in self.codes.items():
            self.codes[role] = np.zeros(capacity, dtype=np.int64)
            self.codes[role][: self.size] = old[: self.size]

    def read_at(self, cutoff: float) -> None:
        """Get ready for a read at ``cutoff``: the latest cutoff first (a compaction drops the rows before it), the
        pending events appended, and the table compacted once it has doubled."""
        self.cutoff = max(self.cutoff, cutoff)
        self.flush()
        if self.size >= 2 * max(self.compacted, 4_096):
            self.compact()

    def append(self, events: Sequence[Parsed], role: str, keys: Mapping[str, Factorized], used: int) -> bool:
        """Append a writer's own new events (each naming a key of this table's ``role``), a column at a time: the
        rows ``merge`` would add, each entity's in the order given, its entities marked read at ``used``. ``keys``: each
        role's keys of the events, factorized. False, and nothing done, if an id is held already or given twice
        (``merge`` then decides each)."""
        tx_ids = [event[0] for event in events]
        if not self.row.keys().isdisjoint(tx_ids) or len(set(tx_ids)) < len(tx_ids):
            return False
        self.flush()
        start, stop = self._put(events, keys)
        for name, codes in self.codes.items():
            distinct, at = keys.get(name, ([""], np.zeros(len(events), dtype=np.int64)))
            code_of, names = self.code_of[name], self.names[name]
            codes[start:stop] = np.array([_code(code_of, names, key) for key in distinct], dtype=np.int64)[at]
        distinct, at = keys[role]
        order = np.argsort(at, kind="stable")
        bounds = np.searchsorted(at[order], np.arange(len(distinct) + 1)).tolist()
        rows, seqs = (order + start).tolist(), self.changed[start:stop][order].tolist()
        held = [self.entity_of(key, used) for key in distinct]
        for each, first, last in zip(held, bounds[:-1], bounds[1:], strict=True):
            each.rows += rows[first:last]
            each.seen, each.last = max(each.seen, *seqs[first:last]), None
        self.entity[start:stop] = np.array([each.code for each in held], dtype=np.int64)[at]
        self.row.update(zip(tx_ids, range(start, stop), strict=True))
        self.size = stop
        return True

    def gather(self, held: Sequence[Held], cutoff: float) -> tuple[np.ndarray, np.ndarray]:
        """The rows of ``held``'s events at or after ``cutoff``, sorted by (entity, time), stably (ties keep the
        order the events came in), and each row's entity as its position in ``held``."""
        self.read_at(cutoff)
        lengths = np.fromiter((len(each.rows) for each in held), dtype=np.int64, count=len(held))
        rows = np.fromiter(itertools.chain.from_iterable(each.rows for each in held), np.int64, int(lengths.sum()))
        entity = np.repeat(np.arange(len(held), dtype=np.int64), lengths)
        time = self.time[rows]
        keep = time >= cutoff  # a dead row's NaN never is
        if not keep.all():
            rows, entity, time = rows[keep], entity[keep], time[keep]
        if len(rows) > 1 and not _sorted(entity, time):
            order = np.lexsort((time, entity))
            rows, entity = rows[order], entity[order]
        return rows, entity

    def columns(self, rows: np.ndarray) -> dict[str, np.ndarray]:
        """The columns' values at ``rows``, read only (``keys`` apart: each role's codes, as ``keys:<role>``)."""
        out = {
            name: _read_only(getattr(self, name)[rows]) for name in ("tx_id", "time", "amount", "label_time", "label")
        }
        out.update({f"keys:{role}": _read_only(codes[rows]) for role, codes in self.codes.items()})
        return out

    def compact(self) -> None:
        """Keep only the rows at or after the latest cutoff of the entities held, renumbered, and their names."""
        size, count = self.size, len(self.held)
        recoded = np.full(self.codes_given, -1, dtype=np.int64)  # each held entity's new code, in held order
        recoded[[held.code for held in self.held.values()]] = np.arange(count)
        entity = recoded[self.entity[:size]]
        kept = np.flatnonzero((self.time[:size] >= self.cutoff) & (entity >= 0))
        order = np.argsort(entity[kept], kind="stable")
        starts = np.searchsorted(entity[kept][order], np.arange(count + 1))
        for key, held in list(self.held.items()):
            held.code = int(recoded[held.code])
            held.rows = order[starts[held.code] : starts[held.code + 1]].tolist()
            if not held.rows:
                del self.held[key]  # nothing of it is left to read: a later read fetches its changes whole
        self.codes_given = count  # (codes of the entities dropped just now stay unused until the next compaction)
        for name in _COLUMNS:
            setattr(self, name, getattr(self, name)[kept])
        self.entity = entity[kept]
        for role, codes in self.codes.items():
            old_names, code_of, names = self.names[role], {"": 0}, [""]
            uniques, inverse = np.unique(codes[kept], return_inverse=True)
            renamed = np.array([_code(code_of, names, old_names[u]) for u in uniques.tolist()], dtype=np.int64)
            self.codes[role] = renamed[inverse] if len(kept) else np.zeros(0, dtype=np.int64)
            self.code_of[role], self.names[role] = code_of, names
        self.size = self.compacted = len(kept)
        self.row, self.moved = {}, {}
        for at, (tx_id, code) in enumerate(zip(self.tx_id.tolist(), self.entity.tolist(), strict=True)):
            first = self.row.setdefault(tx_id, at)
            if first != at:
                self.moved[(code, tx_id)] = at
        self._resize(max(64, 2 * self.size))

    def forget(self, key: str) -> None:
        """Stop holding ``key``: its rows die (a later read fetches its changes whole)."""
        held = self.held.pop(key, None)
        if held is None:
            return
        self.flush()
        for at in held.rows:
            tx_id = self.tx_id[at]
            if self.row.get(tx_id) == at:
                del self.row[tx_id]
                other = next((key for key in self.moved if key[1] == tx_id), None)  # another entity's row of it
                if other is not None:
                    self.row[tx_id] = self.moved.pop(other)
            elif self.moved.get((held.code, tx_id)) == at:
                del self.moved[(held.code, tx_id)]
            self.time[at] = math.nan  # its rows die: no cutoff keeps a NaN time


def _sorted(entity: np.ndarray, time: np.ndarray) -> bool:
    """Whether rows are sorted by (entity, time)."""
    return bool(np.all((entity[1:] > entity[:-1]) | ((entity[1:] == entity[:-1]) & (time[1:] >= time[:-1]))))


def _read_only(column: np.ndarray) -> np.ndarray:
    """``column``, no longer writable (a gathered copy, so nothing else holds it writable)."""
    column.flags.writeable = False
    return column


def factorized(keys: list[str]) -> Factorized:
    """``keys`` factorized (in C: a batch's keys, hashed once)."""
    at, distinct = pd.factorize(np.array(keys, dtype=object))
    return distinct.tolist(), at.astype(np.int64, copy=False)


def _code(code_of: dict[str, int], names: list[str], key: str) -> int:
    """``key``'s code among a role's names, a new one (appended to both) if it has none."""
    code = code_of.get(key)
    if code is None:
        code = code_of[key] = len(names)
        names.append(key)
    return code
