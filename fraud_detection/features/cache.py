"""A reader's cache of entity state: each entity's events as growable columns, kept current from a store's changes.

Both stores (:mod:`fraud_detection.features.store`, :mod:`fraud_detection.features.redis_store`) hand a reader
only the changes after the last one it saw (``Change``: the event's JSON, its label, its sequence number);
:class:`StateCache` applies them to what it holds and builds the state a lookup reads, so a busy entity's events
are parsed once per reader process, not on every lookup.
"""

from __future__ import annotations

import itertools
import math
import operator
from collections import OrderedDict
from collections.abc import Iterable, Iterator, Mapping, Sequence

import numpy as np
import orjson

from fraud_detection.features.online import EntityState


def label_of(label: str | None) -> tuple[int, float]:
    """A label and its time from ``label_text``; ``(0, inf)`` while unknown."""
    if label is None:
        return 0, math.inf
    value, label_time = orjson.loads(label)
    return int(value), float(label_time)


Change = tuple[str, str | None, int]
"""One changed event as a store hands it to a reader: (``member`` text, ``label_text`` or None, sequence number)."""

_COLUMNS = ("tx_id", "time", "amount", "label", "label_time", "changed")
"""An :class:`_Entity`'s per-event columns besides the key codes (``codes``, one per role)."""

Parsed = tuple[str, float, float, Mapping[str, str], int, float, int]
"""A changed event, parsed: (id, event time, amount, keys by role, label, label time, sequence number)."""

_New = list[Parsed]


def parsed(text: str, label: str | None, seq: int) -> Parsed:
    """A ``Change`` parsed."""
    tx_id, event_time, amount, keys = orjson.loads(text)
    return (tx_id, float(event_time), float(amount), keys, *label_of(label), seq)


class _Entity:
    """One cached entity: its events as growable columns, and the last change it has seen.

    The state it last returned is kept, read-only, and handed out again while no change arrived and the cutoff
    keeps the same events (above the latest one it dropped, at or below the earliest one it kept): a lookup of an
    entity whose events did not change builds nothing. A state's columns are read-only views of the entity's own,
    not copies: slices of ``_views``, which are made read-only once per set of columns (setting a view's flag costs
    more than slicing it). A change to a row that a handed-out state may show (below ``_lent``) first moves the entity
    to new columns (``_own``), so a state never changes after it is handed out. New events go past the end any state
    shows, and a batch's new events are put in time order before they are appended, so the rows a state shows
    rarely move.
    """

    def __init__(self) -> None:
        self.seen = 0
        self._last: tuple[float, float, EntityState] | None = None  # (latest dropped, earliest kept, state)
        self.size = 0
        self.row: dict[str, int] = {}
        self.tx_id = np.empty(16, dtype=object)
        self.time, self.amount, self.label_time = np.empty(16), np.empty(16), np.empty(16)
        self.label, self.changed = np.empty(16, dtype=np.int64), np.empty(16, dtype=np.int64)
        self.codes: dict[str, np.ndarray] = {}
        self.code_of: dict[str, dict[str, int]] = {}
        self.names: dict[str, list[str]] = {}  # each role's names by code (``code_of`` inverted; it only grows)
        self._lent = 0  # rows a handed-out state may show are below this
        self._views: dict[str, np.ndarray] = {}  # empty until a state is made of these columns
        self._code_views: dict[str, np.ndarray] = {}

    def update(self, changes: Iterable[Change]) -> None:
        """``merge`` the changes a store handed, parsed."""
        self.merge(parsed(text, label_body, seq) for text, label_body, seq in changes)

    def merge(self, events: Iterable[Parsed]) -> None:
        """Append new events (in one block); for an event already held, unless the change is older than the one held
        (two threads' reads may be applied out of order), replace its label, or the whole event if its time or
        amount changed (its id applied again after the store trimmed the first)."""
        events = events if isinstance(events, list) else list(events)
        row = self.row
        if len(events) > 1:
            latest = {event[0]: event for event in events}
            if len(latest) == len(events) and row.keys().isdisjoint(latest):  # all new, each once: appended as they are
                self._last = None
                self.seen = max(self.seen, max(map(_SEQ, events)))
                self._extend(list(events))
                return
        new: dict[str, Parsed] = {}
        seen, changed = self.seen, False
        for event in events:
            tx_id, event_time, amount, _, _, _, seq = event
            seen = seq if seq > seen else seen
            at = row.get(tx_id)
            if at is None:
                pending = new.get(tx_id)
                if pending is None or pending[6] < seq:  # one event changed twice in the changes read: the later
                    new[tx_id] = event
            elif self.changed[at] >= seq:
                continue
            elif self.time[at] != event_time or self.amount[at] != amount:
                self._replace(at, event)
                changed = True
            else:
                self._own(at)
                self.label[at], self.label_time[at], self.changed[at] = event[4], event[5], seq
                changed = True
        if not (new or changed):
            return  # nothing changed: the state handed out last is still the state
        self._last = None
        self.seen = seen
        if new:
            self._extend(list(new.values()))

    def _replace(self, at: int, event: Parsed) -> None:
        """Put ``event`` in place of the one held under its id: an id applied again once the store trimmed its first
        event (which the cache may still hold, masked)."""
        self._own(at)
        _, self.time[at], self.amount[at], keys, self.label[at], self.label_time[at], self.changed[at] = event
        for role in keys.keys() - self.codes.keys():
            self._add_role(role)
        for role, codes in self.codes.items():
            codes[at] = _code(self.code_of[role], self.names[role], str(keys.get(role, "")))
        self._sort()

    def state(self, cutoff: float) -> EntityState:
        """The events at or after ``cutoff`` (the store's own trim), sorted by time (stably); drops the rest once
        they are half the rows. The columns are kept sorted by time, so the live events are a suffix."""
        if self._last is not None and self._last[0] < cutoff <= self._last[1]:
            return self._last[2]
        if not self.size or self.time[0] >= cutoff:  # nothing to mask: the common case, without a search
            low = 0
        else:
            low = int(self.time[: self.size].searchsorted(cutoff, side="left"))
        if self.size > 64 and 2 * low > self.size:
            self._compact(low)
            low = 0
        if not self._views:
            self._viewed()
        live, views = slice(low, self.size), self._views
        state = EntityState.made(
            tx_id=views["tx_id"][live],
            time=views["time"][live],
            amount=views["amount"][live],
            label=views["label"][live],
            label_time=views["label_time"][live],
            keys={role: codes[live] for role, codes in self._code_views.items()},
            names=_Names(self.names),
        )
        self._lent = self.size
        dropped = float(self.time[low - 1]) if low else -math.inf
        self._last = (dropped, float(self.time[low]) if low < self.size else math.inf, state)
        return state

    def _own(self, at: int) -> None:
        """Before the row ``at`` (and those after it) is changed in place: if a handed-out state may show it, move to
        new columns of the same size."""
        if at < self._lent:
            self._resize(len(self.time))

    def _viewed(self) -> None:
        """Read-only views of the columns, whose slices the states are (a slice of a read-only view is read-only)."""
        self._views = {name: _read_only(getattr(self, name)) for name in _COLUMNS}
        self._code_views = {role: _read_only(codes) for role, codes in self.codes.items()}

    def _extend(self, new: _New) -> None:
        """Append ``new`` (at least one event) in time order; sort the rows from the first new one if that precedes
        the last one held (a first read comes in id order; another writer's events may be older)."""
        if any(later[1] < earlier[1] for earlier, later in itertools.pairwise(new)):
            new.sort(key=_TIME)  # stably: what sorting the rows after appending them would give, without moving rows
        start, stop = self.size, self.size + len(new)
        disordered = start > 0 and new[0][1] < self.time[start - 1]  # sorted: only its first may precede a held one
        if stop > len(self.time):
            self._resize(max(2 * len(self.time), stop))
        if len(new) <= _FEW:
            self._append(new)
        else:
            self._assign(new)
        if disordered:
            self._sort(start)

    def _assign(self, new: _New) -> None:
        """``_extend``'s append of many events, a slice a column."""
        start, stop = self.size, self.size + len(new)
        tx_ids, times, amounts, keys, labels, label_times, changed = zip(*new, strict=True)
        self.tx_id[start:stop], self.time[start:stop], self.amount[start:stop] = tx_ids, times, amounts
        self.label[start:stop], self.label_time[start:stop], self.changed[start:stop] = labels, label_times, changed
        self.row.update(zip(tx_ids, range(start, stop), strict=True))
        for role in {role for event_keys in keys for role in event_keys} - self.codes.keys():
            self._add_role(role)
        for role, codes in self.codes.items():
            code_of, names = self.code_of[role], self.names[role]
            codes[start:stop] = [_code(code_of, names, str(k.get(role, ""))) for k in keys]
        self.size = stop

    def _append(self, new: _New) -> None:
        """``_extend``'s append of a few events, item by item: a numpy slice assigned from a tuple costs about a
        microsecond a column, an item about a tenth of that."""
        tx_id, time, amount, label, label_time, changed = (
            self.tx_id,
            self.time,
            self.amount,
            self.label,
            self.label_time,
            self.changed,
        )
        codes, code_of, names, row = self.codes, self.code_of, self.names, self.row
        for at, (event_id, event_time, event_amount, keys, event_label, event_label_time, seq) in enumerate(
            new, self.size
        ):
            tx_id[at], time[at], amount[at] = event_id, event_time, event_amount
            label[at], label_time[at], changed[at] = event_label, event_label_time, seq
            row[event_id] = at
            for role in keys:
                if role not in codes:
                    self._add_role(role)
            for role, role_codes in codes.items():
                known, named = code_of[role], names[role]
                role_codes[at] = _code(known, named, str(keys.get(role, "")))
        self.size += len(new)

    def _add_role(self, role: str) -> None:
        """Codes for a role no event held had: every event so far gets code 0, ``""`` (no key of that role)."""
        self.codes[role] = np.zeros(len(self.time), dtype=np.int64)
        self._views = {}  # made again with the new role's codes
        self.code_of[role], self.names[role] = {"": 0}, [""]

    def _sort(self, start: int = 0) -> None:
        """Sort the events by time, stably; those before ``start`` are sorted already, so only the rows from the
        first one later than the earliest event after ``start`` move (and only their ids are indexed again)."""
        size, low = self.size, 0
        if start:
            low = int(self.time[:start].searchsorted(self.time[start:size].min(), side="right"))
        self._own(low)
        order = np.argsort(self.time[low:size], kind="stable") + low
        for name in _COLUMNS:
            column = getattr(self, name)
            column[low:size] = column[order]
        for codes in self.codes.values():
            codes[low:size] = codes[order]
        self.row.update(zip(self.tx_id[low:size].tolist(), range(low, size), strict=True))

    def _resize(self, capacity: int) -> None:
        for name in _COLUMNS:
            old = getattr(self, name)
            new = np.empty(capacity, dtype=old.dtype)
            new[: self.size] = old[: self.size]
            setattr(self, name, new)
        for role, old in self.codes.items():
            self.codes[role] = np.zeros(capacity, dtype=np.int64)
            self.codes[role][: self.size] = old[: self.size]
        self._lent = 0
        self._views = {}  # these columns' views are made when a state is

    def _compact(self, low: int) -> None:
        """Drop the events before ``low`` (all older than any cutoff from now on)."""
        for name in _COLUMNS:
            setattr(self, name, getattr(self, name)[low : self.size].copy())
        self.codes = {role: codes[low : self.size].copy() for role, codes in self.codes.items()}
        self.size -= low
        self.row = {str(tx_id): at for at, tx_id in enumerate(self.tx_id)}
        self._resize(max(16, 2 * self.size))


def _read_only(column: np.ndarray) -> np.ndarray:
    """A view of ``column`` that cannot be written through (nor can its slices)."""
    view = column.view()
    view.flags.writeable = False
    return view


_TIME = operator.itemgetter(1)
"""A ``Parsed`` event's time."""

_SEQ = operator.itemgetter(6)
"""A ``Parsed`` event's sequence number."""


def _code(code_of: dict[str, int], names: list[str], key: str) -> int:
    """``key``'s code among a role's names, a new one (appended to both) if it has none."""
    code = code_of.get(key)
    if code is None:
        code = code_of[key] = len(names)
        names.append(key)
    return code


class _Names(Mapping[str, Sequence[str]]):
    """A state's key names by code, each role's made on first use (most states are read without their counterparties'
    names): as many as the entity had when the state was made (a role's names only grow at the end)."""

    def __init__(self, names: Mapping[str, list[str]]) -> None:
        self._names = names
        self._sizes = {role: len(held) for role, held in names.items()}
        self._made: dict[str, tuple[str, ...]] = {}

    def __getitem__(self, role: str) -> tuple[str, ...]:
        made = self._made.get(role)
        if made is None:
            made = self._made[role] = tuple(self._names[role][: self._sizes[role]])
        return made

    def __iter__(self) -> Iterator[str]:
        return iter(self._sizes)

    def __len__(self) -> int:
        return len(self._sizes)


_FEW = 8
"""Up to this many new events, :meth:`_Entity._extend` sets them item by item (:meth:`_Entity._append`)."""


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

    def update(self, role: str, key: str, changes: Iterable[Change]) -> None:
        """Apply ``changes`` (those after ``seen``) to what is held of the entity (held from now on if it was not)."""
        self._entity(role, key).update(changes)

    def merge(self, role: str, key: str, events: Iterable[Parsed]) -> None:
        """``update`` with the changes already parsed (a writer's own events: nothing to parse back)."""
        self._entity(role, key).merge(events)

    def _entity(self, role: str, key: str) -> _Entity:
        entity = self._entities.get((role, key))
        if entity is None:
            entity = self._entities[(role, key)] = _Entity()
            while len(self._entities) > self.max_entities:
                self._entities.popitem(last=False)
        else:
            self._entities.move_to_end((role, key))
        return entity

    def state(self, role: str, key: str, changes: Sequence[Change], cutoff: float) -> EntityState:
        """The entity's state once ``changes`` (those after ``seen``) are applied to what is held."""
        entity = self._entity(role, key)
        if changes:
            entity.update(changes)
        return entity.state(cutoff)

    def holds(self, entity: tuple[str, str]) -> bool:
        """Whether ``(role, key)`` is held."""
        return entity in self._entities

    def empty(self) -> bool:
        """Whether no entity is held."""
        return not self._entities

    def forget(self, entities: Iterable[tuple[str, str]]) -> None:
        """Drop what is held of ``entities`` (a later read fetches them whole)."""
        for entity in entities:
            self._entities.pop(entity, None)
