"""A reader's cache of entity state: one table of columns a role, kept current from a store's changes.

Both stores (:mod:`fraud_detection.features.store`, :mod:`fraud_detection.features.redis_store`) hand a reader
only the changes after the last one it saw (``Change``: the event's JSON, its label, its sequence number);
:class:`StateCache` applies them to what it holds, so a busy entity's events are parsed once per reader process, not
on every lookup.

Every cached event of a role is a row of that role's :class:`~fraud_detection.features.table.RoleTable`. A batch's
history is gathered from the columns by row number in one step (:meth:`StateCache.gathered`, what the stream reads);
one entity's state (:meth:`StateCache.state`, what the predictor reads) is gathered the same way, and kept while it
does not change.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Sequence

import numpy as np
import orjson

from fraud_detection.features.gathered import Entity, Gathered, KeyNames, RoleHistory, state_of
from fraud_detection.features.online import EntityState
from fraud_detection.features.table import Held, Parsed, RoleTable, factorized


def label_of(label: str | None) -> tuple[int, float]:
    """A label and its time from ``label_text``; ``(0, inf)`` while unknown."""
    if label is None:
        return 0, math.inf
    value, label_time = orjson.loads(label)
    return int(value), float(label_time)


Change = tuple[str, str | None, int]
"""One changed event as a store hands it to a reader: (``member`` text, ``label_text`` or None, sequence number)."""


def parsed(text: str, label: str | None, seq: int) -> Parsed:
    """A ``Change`` parsed."""
    tx_id, event_time, amount, keys = orjson.loads(text)
    return (tx_id, float(event_time), float(amount), keys, *label_of(label), seq)


class StateCache:
    """A reader's held entities, one :class:`RoleTable` a role, kept current from the store's changes; beyond
    ``max_entities`` in a role, the least recently read are dropped when the table is next compacted."""

    def __init__(self, max_entities: int = 50_000) -> None:
        self.max_entities = max_entities
        self._tables: dict[str, RoleTable] = {}
        self._reads = 0

    def _table(self, role: str) -> RoleTable:
        table = self._tables.get(role)
        if table is None:
            table = self._tables[role] = RoleTable()
        return table

    def _held(self, role: str, key: str) -> tuple[RoleTable, Held]:
        self._reads += 1
        table = self._table(role)
        return table, table.entity_of(key, self._reads)

    def seen(self, role: str, key: str, latest: float = math.inf) -> int:
        """The last change held for the entity (0: none); forgets it if the store's ``latest`` is older (a new
        store under the same name)."""
        table = self._tables.get(role)
        if table is None or key not in table.held:
            return 0
        seen = table.held[key].seen
        if seen > latest:
            table.forget(key)
            return 0
        return seen

    def update(self, role: str, key: str, changes: Iterable[Change]) -> None:
        """Apply ``changes`` (those after ``seen``) to what is held of the entity (held from now on if it was not)."""
        self.merge(role, key, [parsed(text, label_body, seq) for text, label_body, seq in changes])

    def merge(self, role: str, key: str, events: Iterable[Parsed]) -> None:
        """``update`` with the changes already parsed (a writer's own events: nothing to parse back)."""
        table, held = self._held(role, key)
        table.merge(held, events)

    def add(self, events: Sequence[Parsed]) -> None:
        """A writer's own new events, in the order applied, into the held state of each entity they name: as
        ``merge`` of each entity's events would leave it, but a column at a time (``RoleTable.append``)."""
        if not events:
            return
        keys = {
            role: factorized([event[3].get(role, "") for event in events])
            for role in dict.fromkeys(role for event in events for role in event[3])
        }
        self._reads += 1
        for role, (distinct, _) in keys.items():
            table = self._table(role)
            # entity by entity when an event has no key of this role, or the table declines (an id it holds or twice)
            if "" in distinct or not table.append(events, role, keys, self._reads):
                by_key: dict[str, list[Parsed]] = {}
                for event in events:
                    if role in event[3]:
                        by_key.setdefault(event[3][role], []).append(event)
                for key, each in by_key.items():
                    self.merge(role, key, each)

    def state(self, role: str, key: str, cutoff: float) -> EntityState:
        """The entity's state at ``cutoff`` from what is held (its changes merged first): the same object again while
        nothing changed."""
        table, held = self._held(role, key)
        last = held.last
        if last is not None and last[0] < cutoff <= last[1]:
            return last[2]
        table.read_at(cutoff)
        rows = np.array(held.rows, dtype=np.int64)
        time = table.time[rows]
        below = time < cutoff  # (a dead row's NaN is neither below nor kept)
        dropped = float(time[below].max()) if below.any() else -math.inf
        keep = time >= cutoff
        if not keep.all():
            rows, time = rows[keep], time[keep]
        if len(time) > 1 and not (time[1:] >= time[:-1]).all():
            rows = rows[np.argsort(time, kind="stable")]
        state = state_of(table.columns(rows), slice(None), KeyNames(table.names))
        held.last = (dropped, float(state.time[0]) if len(rows) else math.inf, state)
        self._trim(table)
        return state

    def gathered(self, wanted: Iterable[Entity], cutoff: float) -> Gathered:
        """The states of ``wanted`` (each held from now on) at ``cutoff``, gathered a role at a time."""
        by_role: dict[str, list[str]] = {}
        for role, key in wanted:
            by_role.setdefault(role, []).append(key)
        roles: dict[str, RoleHistory] = {}
        for role, keys in by_role.items():
            table = self._table(role)
            self._reads += 1
            held = [table.entity_of(key, self._reads) for key in keys]
            rows, entity = table.gather(held, cutoff)
            roles[role] = RoleHistory(
                keys={key: at for at, key in enumerate(keys)},
                bounds=np.searchsorted(entity, np.arange(len(keys) + 1)),
                entity=entity,
                columns=table.columns(rows),
                names=KeyNames(table.names),
            )
            self._trim(table)
        return Gathered(roles)

    def _trim(self, table: RoleTable) -> None:
        """Beyond ``max_entities`` held, forget the least recently read half of the excess and more (a tenth)."""
        if len(table.held) <= self.max_entities:
            return
        oldest = sorted(table.held.items(), key=lambda item: item[1].used)
        for key, _ in oldest[: len(table.held) - self.max_entities + self.max_entities // 10]:
            table.forget(key)

    def holds(self, entity: Entity) -> bool:
        """Whether ``(role, key)`` is held."""
        table = self._tables.get(entity[0])
        return table is not None and entity[1] in table.held

    def empty(self) -> bool:
        """Whether no entity is held."""
        return not any(table.held for table in self._tables.values())

    def forget(self, entities: Iterable[Entity]) -> None:
        """Drop what is held of ``entities`` (a later read fetches them whole)."""
        for role, key in entities:
            table = self._tables.get(role)
            if table is not None:
                table.forget(key)
