"""The cache's table of columns a role: what it hands out stays as it was when it was handed out."""

from __future__ import annotations

import math
import random

from fraud_detection.features.cache import StateCache
from fraud_detection.features.table import Parsed


def _event(n: int, time: float, card: str, terminal: str) -> Parsed:
    return (f"x{n}", time, 10.0 + n, {"card": card, "terminal": terminal}, 0, math.inf, n + 1)


def test_a_state_keeps_its_key_names_when_the_table_is_compacted_and_its_names_coded_anew() -> None:
    cache = StateCache()
    cache.merge("card", "c0", [_event(n, float(n), "c0", f"old{n}") for n in range(5)])
    state = cache.state("card", "c0", -math.inf)  # its names not asked for yet: they are made when first asked
    # 9,000 events of other cards at other terminals, then a read whose cutoff leaves c0's behind: the table doubles
    # past its first compaction size, drops c0's rows and codes the terminals that are left anew
    for n in range(5, 9_005):
        cache.merge("card", f"c{n % 50 + 1}", [_event(n, 1_000.0 + n, f"c{n % 50 + 1}", f"new{n}")])
    gathered = cache.gathered([("card", "c1")], cutoff=500.0)
    assert len(gathered[("card", "c1")]) == 180
    assert [dict(event.keys) for event in state.events] == [{"card": "c0", "terminal": f"old{n}"} for n in range(5)]
    assert not cache.holds(("card", "c0"))  # nothing of it is left above the cutoff: a later read fetches it whole


def _merged(cache: StateCache, events: list[Parsed]) -> None:
    """The events merged entity by entity, as a writer merged its own before ``StateCache.add``."""
    by_entity: dict[tuple[str, str], list[Parsed]] = {}
    for event in events:
        for entity in event[3].items():
            by_entity.setdefault(entity, []).append(event)
    for (role, key), each in by_entity.items():
        cache.merge(role, key, each)


def test_a_writers_own_events_added_a_column_at_a_time_leave_the_cache_as_merging_them_does() -> None:
    rng = random.Random(5)
    added, merged, seq = StateCache(), StateCache(), 0
    entities: set[tuple[str, str]] = set()
    events: list[Parsed] = []
    for batch in range(12):  # past two compactions (the tables double from 4,096 rows)
        last, events = events, []
        for _ in range(1_000):
            seq += 1
            keys = {"card": f"c{rng.randrange(40)}", "terminal": f"t{rng.randrange(15)}"}
            if batch == 3 and rng.random() < 0.05:
                del keys["terminal"]  # an event without a terminal: that table takes the batch entity by entity
            events.append((f"x{seq}", 100.0 * (seq // 3), float(seq % 97), keys, 0, math.inf, seq))  # ties in time
        if batch in (5, 6):  # an id held already (labelled now), or an id twice: merge decides each
            seq += 1
            events.append((*(last if batch == 5 else events)[10][:4], 1, 7.0, seq))
        added.add(events)
        _merged(merged, events)
        assert not added.holds(("terminal", ""))  # an event without a terminal is no terminal's
        entities |= {entity for event in events for entity in event[3].items()}
        cutoff = 100.0 * ((seq - 3_000) // 3)  # the last 3,000 events or so, as the times run
        wanted = sorted(entities)
        ours, theirs = added.gathered(wanted, cutoff), merged.gathered(wanted, cutoff)
        assert [ours[e].tx_id.tolist() for e in wanted] == [theirs[e].tx_id.tolist() for e in wanted]  # ties too
        assert sum(len(ours[e]) for e in wanted) >= 2 * 1_000  # the cutoff leaves events to compare
        for entity in wanted:
            assert added.state(*entity, cutoff) == merged.state(*entity, cutoff), (batch, entity)
