"""A batch's entity states as a reader's cache gathers them
(:meth:`fraud_detection.features.cache.StateCache.gathered`): one set of columns a role, each entity's events a run
of rows, sorted by time."""

from __future__ import annotations

from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass

import numpy as np

from fraud_detection.features.online import EntityState

Entity = tuple[str, str]
"""An entity as the stores key it: (role, key)."""


class KeyNames(Mapping[str, Sequence[str]]):
    """A state's key names by code, each role's made on first use (most states are read without their counterparties'
    names): as many as the cache's table had when the state was made (a role's names only grow at the end, until a
    compaction gives the table new lists)."""

    def __init__(self, names: Mapping[str, list[str]]) -> None:
        self._names = dict(names)  # the lists as they are now: a compaction puts new ones in the table's
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


def state_of(columns: Mapping[str, np.ndarray], part: slice, names: KeyNames) -> EntityState:
    """The state of the rows ``part`` of gathered ``columns``."""
    return EntityState.made(
        tx_id=columns["tx_id"][part],
        time=columns["time"][part],
        amount=columns["amount"][part],
        label=columns["label"][part],
        label_time=columns["label_time"][part],
        keys={name[5:]: column[part] for name, column in columns.items() if name.startswith("keys:")},
        names=names,
    )


@dataclass(frozen=True)
class RoleHistory:
    """One role's gathered events of a batch's entities: ``keys[i]``'s events are rows ``bounds[i]:bounds[i + 1]``
    of the columns, sorted by time (stably). ``codes[role]`` codes each event's key of ``role`` (one code a name
    across the whole table, so codes compare as names do)."""

    keys: Mapping[str, int]
    bounds: np.ndarray
    entity: np.ndarray
    columns: Mapping[str, np.ndarray]
    names: KeyNames

    def codes(self, role: str) -> np.ndarray:
        """Each event's code for its key of ``role`` (0, no key, for all if no event has one)."""
        found = self.columns.get(f"keys:{role}")
        return found if found is not None else np.zeros(len(self.entity), dtype=np.int64)


class Gathered(Mapping[Entity, EntityState]):
    """A batch's entities' states, gathered one role at a time into :class:`RoleHistory` columns (what the stream's
    features are computed from); each entity's :class:`EntityState` is a slice of them, made when asked for."""

    def __init__(self, roles: Mapping[str, RoleHistory]) -> None:
        self.roles = roles

    def __getitem__(self, entity: Entity) -> EntityState:
        part = self.roles[entity[0]]
        at = part.keys[entity[1]]
        return state_of(part.columns, slice(int(part.bounds[at]), int(part.bounds[at + 1])), part.names)

    def __iter__(self) -> Iterator[Entity]:
        return ((role, key) for role, part in self.roles.items() for key in part.keys)

    def __len__(self) -> int:
        return sum(len(part.keys) for part in self.roles.values())
