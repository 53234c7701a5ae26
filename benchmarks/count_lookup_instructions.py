"""The stream's lookups counted in instructions, which other jobs on a shared machine do not move.

Each lookup runs over the same generated rows (``--rows`` over ``--days``, in batches of ``--batch`` ordered as
three partitions hand them: by a hash of the card, time order kept within each) in a process of its own under
``valgrind --tool=cachegrind --cache-sim=no``; a process that only loads the rows is subtracted, and what is left is
divided by the rows:

* **applied**: ``apply_and_read`` and the batch's features, as the applying stream scorer does;
* **read only**: ``read_many`` and the batch's features over a store that already holds every row, as the read-only
  scorer does (the store is filled first by ``apply_many``, whose count is subtracted);
* **following**: the same read-only lookup of each batch right after another connection applied it, as a scorer
  reading a store that a separate process writes;
* **write**: ``apply_many`` alone (``fill``).

Needs ``valgrind`` (Debian: ``apt-get install -y valgrind``).

    .venv/bin/python benchmarks/count_lookup_instructions.py [--rows 20000] [--days 12] [--batch 2000]
"""

from __future__ import annotations

import argparse
import pickle
import re
import shutil
import subprocess
import sys
import tempfile
import zlib
from concurrent.futures import ThreadPoolExecutor
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

MODES = ("none", "applied", "fill", "read only", "following")
"""What a counted process does after loading the rows; ``none`` and ``fill`` (``apply_many`` of every batch, the
write) are the counts subtracted."""


def run_mode(rows: Path, mode: str, batch: int) -> None:
    """The lookup ``mode`` over the pickled rows (in this process: the one valgrind counts)."""
    from fraud_detection.features.store import SQLiteStateStore
    from serving.state_store import batch_features, read_entities

    transactions, feature_set = pickle.loads(rows.read_bytes())
    roles = tuple(dict.fromkeys(aggregate.entity for aggregate in feature_set.aggregates))
    batches = []
    for start in range(0, len(transactions), batch):
        chunk = transactions[start : start + batch]
        batches.append(sorted(chunk, key=lambda t: zlib.crc32(t.keys[roles[0]].encode()) % 3))
    work = Path(tempfile.mkdtemp(prefix="count-lookup-"))
    horizon = feature_set.horizon
    if mode == "none":
        return
    writer = SQLiteStateStore(work / "state.db", horizon=horizon)
    if mode == "applied":
        for each in batches:
            batch_features(each, writer.apply_and_read(each)[1], feature_set)
        return
    reader = SQLiteStateStore(work / "state.db", horizon=horizon, readonly=True)
    for each in batches:
        writer.apply_many(each)
        if mode == "following":
            batch_features(each, read_entities(reader, each, roles), feature_set)
    if mode == "read only":
        for each in batches:
            batch_features(each, read_entities(reader, each, roles), feature_set)


def counted(rows: Path, mode: str, batch: int) -> int:
    """Instructions valgrind counts for ``mode``'s whole process."""
    command = ["valgrind", "--tool=cachegrind", "--cache-sim=no", "--cachegrind-out-file=/dev/null"]
    command += [sys.executable, __file__, "--run", mode, "--rows-file", str(rows), "--batch", str(batch)]
    done = subprocess.run(command, capture_output=True, text=True, check=True, cwd=REPO)
    found = re.search(r"I\s+refs:\s+([\d,]+)", done.stderr)
    if found is None:
        raise RuntimeError(f"no instruction count in valgrind's output for {mode}:\n{done.stderr[-2000:]}")
    return int(found.group(1).replace(",", ""))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=20_000)
    parser.add_argument("--days", type=int, default=12, help="days the rows span (as the stream benchmark's)")
    parser.add_argument("--batch", type=int, default=2_000)
    parser.add_argument("--run", choices=MODES, help=argparse.SUPPRESS)
    parser.add_argument("--rows-file", type=Path, help=argparse.SUPPRESS)
    args = parser.parse_args()
    for name in ("rows", "days", "batch"):
        if getattr(args, name) < 1:
            parser.error(f"--{name} must be at least 1, got {getattr(args, name)}")
    if args.run:
        run_mode(args.rows_file, args.run, args.batch)
        return 0
    if shutil.which("valgrind") is None:
        print("valgrind not found: apt-get install -y valgrind", file=sys.stderr)
        return 2
    from tests.serving.transaction_model import feature_set, make_transaction_model

    work = Path(tempfile.mkdtemp(prefix="count-lookup-"))
    model = make_transaction_model(work / "model", n_rows=args.rows + 200, days=args.days)
    rows = work / "rows.pickle"
    rows.write_bytes(pickle.dumps(([model.transaction(i) for i in range(args.rows)], feature_set())))
    with ThreadPoolExecutor(max_workers=2) as pool:
        count = dict(zip(MODES, pool.map(lambda mode: counted(rows, mode, args.batch), MODES), strict=True))
    per = {mode: (count[mode] - count["none"]) / args.rows for mode in MODES}
    read_only = (count["read only"] - count["fill"]) / args.rows
    following = (count["following"] - count["fill"]) / args.rows
    print(f"Instructions a transaction, {args.rows:,} rows over {args.days} days in batches of {args.batch:,}:")
    print(f"- applied (apply_and_read and the features): {per['applied'] / 1e3:,.1f}k")
    print(f"- read only (read_many and the features, a store that does not change): {read_only / 1e3:,.1f}k")
    print(f"- following (the same, each batch right after another connection applied it): {following / 1e3:,.1f}k")
    print(f"- write (apply_many alone): {per['fill'] / 1e3:,.1f}k")
    print(
        f"Read only over applied: {read_only / per['applied']:.2f}x; read only over following: "
        f"{read_only / following:.2f}x"
    )
    return 0


if __name__ == "__main__":
    sys.exit(main())
