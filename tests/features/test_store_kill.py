"""A writer process killed with -9 in the middle of its batches leaves the embedded store as if it had stopped
after its last commit: a replay of every batch then leaves it exactly as one clean run, nothing counted twice.

Run against the real file in WAL mode with the writer's ``synchronous=NORMAL`` (no fsync per commit)."""

from __future__ import annotations

import signal
import subprocess
import sys
import textwrap
import time
from pathlib import Path

from fraud_detection.features.definitions import HOUR
from fraud_detection.features.online import Transaction
from fraud_detection.features.store import SQLiteStateStore
from tests.features.test_apply_many import dump

HORIZON, GRACE, BATCH, BATCHES = 6 * HOUR, HOUR, 200, 400


def batch(number: int) -> list[Transaction]:
    """Batch ``number`` of a stream of 60-second ticks over 10 cards and 4 terminals."""
    return [
        Transaction(
            tx_id=f"x{i}",
            event_time=60.0 * (i // 3),
            amount=float(i % 97),
            keys={"card": f"c{i % 10}", "terminal": f"t{i % 4}"},
        )
        for i in range(number * BATCH, (number + 1) * BATCH)
    ]


WRITER = textwrap.dedent(
    """
    import sys
    from tests.features.test_store_kill import BATCHES, GRACE, HORIZON, batch
    from fraud_detection.features.store import SQLiteStateStore

    store = SQLiteStateStore(sys.argv[1], horizon=HORIZON, grace=GRACE)
    for number in range(BATCHES):
        store.apply_many(batch(number))
        print(number, flush=True)
    """
)


def test_a_writer_killed_mid_stream_then_replayed_counts_each_transaction_once(tmp_path: Path) -> None:
    path = tmp_path / "state.db"
    writer = subprocess.Popen(
        [sys.executable, "-c", WRITER, str(path)], stdout=subprocess.PIPE, text=True, cwd=Path(__file__).parents[2]
    )
    assert writer.stdout is not None
    for _ in range(5):  # a few batches committed, then killed while it applies the next ones
        writer.stdout.readline()
    time.sleep(0.05)
    writer.send_signal(signal.SIGKILL)
    writer.wait()

    store = SQLiteStateStore(path, horizon=HORIZON, grace=GRACE)
    assert store._conn.execute("PRAGMA synchronous").fetchone()[0] == 1  # NORMAL
    committed = store._conn.execute("SELECT seq FROM clock").fetchone()[0]  # one a transaction applied
    assert 0 < committed < BATCHES * BATCH
    replayed = [store.apply_many(batch(number)) for number in range(BATCHES)]
    assert sum(map(sum, replayed)) == BATCHES * BATCH - committed

    clean = SQLiteStateStore(tmp_path / "clean.db", horizon=HORIZON, grace=GRACE)
    for number in range(BATCHES):
        clean.apply_many(batch(number))
    assert dump(store) == dump(clean)
    store.close()
    clean.close()
