"""The cache's table of columns a role: what it hands out stays as it was when it was handed out."""

from __future__ import annotations

import math

from fraud_detection.features.cache import Parsed, StateCache


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
