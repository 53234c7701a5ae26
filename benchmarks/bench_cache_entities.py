"""What one entity's merge and state cost in a reader's cache as the cache holds more entities: the same work, side by
side in one run.

Every lookup of a batch whose cards changed does, per card, one ``StateCache.merge`` of its new events and one
``StateCache.state``: the stream's writer for its own events, and a scorer that follows a writer for the changes it
reads.
Here each of ``--entities`` cached entities (a list of counts) starts with ``--events`` events, then gets two new
events at a time, four times, the entities taken in a shuffled order each time (as a batch touches cards in no
particular order), over fresh sets of entities until ``--merges`` calls are timed: every entity holds as many events
at every count. Each count is measured ``--rounds`` times, the counts alternated. The work per call is the same at
every count; only the number of entities whose columns, dicts and views share the CPU's caches changes. A cost that
grows with the count is the memory a cache spread over many small arrays pays, not Python's instructions.

    .venv/bin/python benchmarks/bench_cache_entities.py [--entities 1,100,1650,10000] [--merges 40000] [--rounds 3]
"""

from __future__ import annotations

import argparse
import math
import random
import statistics
import sys
import time
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fraud_detection.features.cache import Parsed, StateCache  # noqa: E402

TERMINALS = 150
"""Terminals the events name (the stream benchmark's generator makes one per 400 rows of 60,000)."""

EACH = 4
"""Merges of each entity: every entity grows from ``--events`` to ``--events`` + 8 events at every count."""


def measured(entities: int, events: int, merges: int, seed: int) -> tuple[float, float]:
    """Microseconds per call of ``merge`` and of ``state`` over ``entities`` cached entities, each merged
    :data:`EACH` times (fresh sets of entities until ``merges`` calls are timed), so every entity holds as many events
    at every count."""
    sequence = 0

    def event(at: float, card: int) -> Parsed:
        nonlocal sequence
        sequence += 1
        keys = {"card": f"C{card}", "terminal": f"T{sequence % TERMINALS}"}
        return (f"tx{sequence}", at, 10.0, keys, 0, math.inf, sequence)

    shuffle = random.Random(seed).shuffle
    merging = stating = 0.0
    done = 0
    while done < merges:
        cache = StateCache(max_entities=entities)
        now = 0.0
        for card in range(entities):
            cache.merge("card", f"C{card}", [event(now, card) for _ in range(events)])
            cache.state("card", f"C{card}", (), -math.inf)
        for _ in range(EACH):
            order = list(range(entities))
            shuffle(order)
            for card in order:
                now += 1.0
                new = [event(now, card), event(now + 0.5, card)]
                key = f"C{card}"
                started = time.perf_counter()
                cache.merge("card", key, new)
                merged = time.perf_counter()
                cache.state("card", key, (), -math.inf)
                merging += merged - started
                stating += time.perf_counter() - merged
        done += EACH * entities
    return merging / done * 1e6, stating / done * 1e6


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--entities", default="1,100,1650,10000", help="entity counts, comma-separated")
    parser.add_argument("--events", type=int, default=30, help="events each entity holds before the merges")
    parser.add_argument("--merges", type=int, default=40_000, help="merges timed per count and round (at least)")
    parser.add_argument("--rounds", type=int, default=3, help="rounds, the counts alternated")
    args = parser.parse_args()
    try:
        counts = [int(text) for text in args.entities.split(",")]
    except ValueError:
        parser.error(f"--entities must be whole numbers, comma-separated, got {args.entities!r}")
    if any(count < 1 for count in counts) or args.events < 1 or args.merges < 1 or args.rounds < 1:
        parser.error("--entities, --events, --merges and --rounds must be at least 1")
    seen: dict[int, list[tuple[float, float]]] = {count: [] for count in counts}
    for round_number in range(args.rounds):
        for count in counts if round_number % 2 == 0 else counts[::-1]:
            seen[count].append(measured(count, args.events, args.merges, seed=round_number))
    print(f"Per call, medians of {args.rounds} rounds, at least {args.merges:,} merges of 2 events each:")
    print("| entities cached | merge µs | state µs | merge + state vs 1 entity |")
    print("| ---: | ---: | ---: | ---: |")
    first = None
    for count in counts:
        merge = statistics.median(m for m, _ in seen[count])
        state = statistics.median(s for _, s in seen[count])
        first = first or merge + state
        print(f"| {count:,} | {merge:.2f} | {state:.2f} | {(merge + state) / first:.2f}x |")


if __name__ == "__main__":
    main()
