"""Offline history features at PaySim's size against the obvious pandas way, and the online lookup's latency.

* offline: ``fraud_detection.features.offline.compute_features`` on a synthetic canonical frame (6,362,620 rows,
  500k cards, 10k terminals, 30 days, times on whole seconds so there are ties) for the windowed counts and sums
  pandas can compute, then for the whole default card/terminal set.
* pandas: ``groupby(key).rolling(window, on=time, closed="left")`` with ``count`` and ``sum`` per window on a
  datetime column. ``closed="left"`` is the window ``[t - W, t)``, and rows with the same time as ``t`` are
  outside it, as in our rule. Both sides' values are compared on a sample of rows.
* dask: ``compute_features_dask`` for the default set on a 2-worker ``LocalCluster``, the frame made by the
  workers in parts of ``--dask-part-rows`` (each part a slice of the 30 days), the result summed per column;
  up to ``--dask-check-up-to`` rows the sums are compared with the local engine's.
* dask-load (only with ``--only dask-load``): ``--load-rows`` raw transactions from the built-in generator,
  written by the workers as Parquet parts of ``--dask-part-rows`` (``dask_steps.generate_transactions``), then
  ``dask_transactions.load_transactions`` timed: every part checked with the mapping, the global order, the
  default card/terminal features, the split and the windows written.
* online: after applying the first rows of a smaller frame, per row as the stream does it: ``read`` and
  ``features_for`` (timed), then ``apply``; against the embedded SQLite store and a redis-server started here.
  Also the first read of an entity by a fresh store object (nothing cached: the whole state parsed).

Run: .venv/bin/python benchmarks/bench_features.py  [--rows 6362620] [--pandas-rows N (0: skip)]
         [--dask-rows 6362620 (0: skip)] [--dask-memory 6GiB] [--only offline|dask|online|dask-load]
         [--load-rows 3000000] [--load-dir DIR]
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from pathlib import Path

import numpy as np
import pandas as pd

from fraud_detection.features.definitions import DAY, HOUR, Aggregate, FeatureSet, card_terminal_features
from fraud_detection.features.offline import compute_features
from fraud_detection.features.online import Transaction, features_for

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))  # the repository, for its test helpers
from tests.conftest import redis_server

WINDOWS = (HOUR, DAY, 7 * DAY)


def synthetic(rows: int, cards: int, terminals: int, seed: int = 0) -> pd.DataFrame:
    """A canonical transaction frame: 30 days, whole-second times, labels known 1 to 14 days later."""
    rng = np.random.default_rng(seed)
    event_time = np.sort(rng.integers(0, 30 * 86_400, rows)).astype(np.float64)
    card = rng.zipf(1.3, rows) % cards
    return pd.DataFrame(
        {
            "tx_id": np.char.add("t", np.arange(rows).astype(str)),
            "event_time": event_time,
            "seq": np.arange(rows, dtype=np.int64),
            "key_card": np.char.add("c", card.astype(str)),
            "key_terminal": np.char.add("m", rng.integers(0, terminals, rows).astype(str)),
            "amount": rng.gamma(2.0, 50.0, rows).round(2),
            "label": (rng.random(rows) < 0.002).astype(np.int64),
            "label_time": event_time + rng.integers(1, 15, rows) * 86_400.0,
        }
    )


def windowed() -> FeatureSet:
    """The windowed counts and sums pandas' rolling can also compute."""
    return FeatureSet(
        aggregates=tuple(
            Aggregate(entity=role, aggregate=kind, column="amount" if kind == "sum" else None, window=window)
            for role in ("card", "terminal")
            for window in WINDOWS
            for kind in ("count", "sum")
        )
    )


def pandas_way(frame: pd.DataFrame) -> pd.DataFrame:
    """The obvious pandas: one groupby-rolling per key and window, on a datetime column."""
    data = frame[["key_card", "key_terminal", "amount"]].assign(when=pd.to_datetime(frame["event_time"], unit="s"))
    out = {}
    for role in ("card", "terminal"):
        for window in WINDOWS:
            rolled = (
                data.groupby(f"key_{role}", sort=False)
                .rolling(f"{int(window)}s", on="when", closed="left")["amount"]
                .agg(["count", "sum"])
            )
            # rows come out group by group (groups in first-appearance order), each group in row order
            positions = np.argsort(pd.factorize(data[f"key_{role}"])[0], kind="stable")
            assert (rolled.index.get_level_values(0) == data[f"key_{role}"].to_numpy()[positions]).all()
            name = Aggregate(entity=role, aggregate="count", window=window).name
            for column, feature in (("count", name), ("sum", name.replace("_count_", "_amount_sum_"))):
                values = np.empty(len(data))
                values[positions] = rolled[column].fillna(0.0).to_numpy()
                out[feature] = values
    return pd.DataFrame(out)


def timed(call):  # type: ignore[no-untyped-def]
    start = time.perf_counter()
    result = call()
    return result, time.perf_counter() - start


def offline(args: argparse.Namespace) -> None:
    frame, seconds = timed(lambda: synthetic(args.rows, args.cards, args.terminals))
    print(
        f"frame: {len(frame):,} rows, {frame.key_card.nunique():,} cards, {frame.key_terminal.nunique():,} terminals "
        f"(made in {seconds:.1f}s)"
    )
    ours, ours_s = timed(lambda: compute_features(frame, windowed()))
    print(f"ours   (12 windowed counts/sums, {len(frame):,} rows): {ours_s:8.1f} s")
    _, full_s = timed(lambda: compute_features(frame, card_terminal_features()))
    print(f"ours   (default card/terminal set, {len(card_terminal_features().names)} features): {full_s:8.1f} s")
    if args.pandas_rows <= 0:
        return
    subset = frame.iloc[: args.pandas_rows] if args.pandas_rows < len(frame) else frame
    theirs, theirs_s = timed(lambda: pandas_way(subset))
    scaled = theirs_s * len(frame) / len(subset)
    print(
        f"pandas (12 windowed counts/sums, {len(subset):,} rows): {theirs_s:8.1f} s"
        + (f"  -> scaled linearly to {len(frame):,} rows: {scaled:.1f} s" if len(subset) < len(frame) else "")
    )
    # ours again right after pandas: on a shared machine the load moves, so the ratio uses the slower of the two
    _, again_s = timed(lambda: compute_features(frame, windowed()))
    print(f"ours   (12 windowed counts/sums, again after pandas): {again_s:8.1f} s")
    ours_subset = ours if len(subset) == len(frame) else compute_features(subset, windowed())
    sample = np.random.default_rng(1).choice(len(subset), size=min(200_000, len(subset)), replace=False)
    np.testing.assert_allclose(
        ours_subset[theirs.columns].to_numpy()[sample], theirs.to_numpy()[sample], rtol=1e-9, atol=1e-6
    )
    print(
        f"values equal on {len(sample):,} sampled rows; ratio pandas/ours: {scaled / max(ours_s, again_s):.1f}x "
        f"(against the slower of our two runs)"
    )


def dask_chunk(part: int, parts: int, rows: int, cards: int, terminals: int) -> pd.DataFrame:
    """One partition of the Dask frame: the ``part``-th slice of the 30 days, its own seed, ``seq`` numbered
    after the earlier parts (so the whole is a canonical frame)."""
    frame = synthetic(rows, cards, terminals, seed=1_000 + part)
    span = 30 * 86_400 / parts
    delay = (frame["label_time"] - frame["event_time"]).to_numpy()
    frame["event_time"] = np.floor(part * span + frame["event_time"] / parts)
    frame["label_time"] = frame["event_time"] + delay
    frame["seq"] += part * rows
    frame["tx_id"] = f"p{part}-" + frame["tx_id"]
    return frame


def on_dask(args: argparse.Namespace) -> None:
    import dask.dataframe as dd

    from fraud_detection.engines.dask_cluster import local_client
    from fraud_detection.engines.dask_features import compute_features_dask

    parts = max(1, -(-args.dask_rows // args.dask_part_rows))
    per_part = args.dask_rows // parts
    feature_set = card_terminal_features()
    with local_client(workers=args.dask_workers, memory_limit=args.dask_memory):
        frame = dd.from_map(
            dask_chunk, range(parts), parts=parts, rows=per_part, cards=args.cards, terminals=args.terminals
        )
        result, seconds = timed(lambda: compute_features_dask(frame, feature_set).sum().compute())
    print(
        f"dask   (default card/terminal set, {per_part * parts:,} rows in {parts} partitions, "
        f"{args.dask_workers} workers of {args.dask_memory}): {seconds:8.1f} s (made, computed and summed)"
    )
    if per_part * parts <= args.dask_check_up_to:
        whole = pd.concat([dask_chunk(p, parts, per_part, args.cards, args.terminals) for p in range(parts)])
        local = compute_features(whole.reset_index(drop=True), feature_set).sum()
        np.testing.assert_allclose(result[local.index].to_numpy(), local.to_numpy(), rtol=1e-9)
        print("dask column sums equal the local engine's")


def dask_load(args: argparse.Namespace) -> None:
    """Generated raw transactions written by the workers in parts, then the Dask engine's whole load of them."""
    from fraud_detection import data
    from fraud_detection.config import DataKnobs
    from fraud_detection.data_transactions import inputs_of
    from fraud_detection.engines.dask_cluster import local_client
    from fraud_detection.engines.dask_transactions import load_transactions
    from fraud_detection.steps import dask_steps
    from fraud_detection.transactions.generator import TransactionConfig

    dask_steps.SYNTHETIC_PART_ROWS = args.dask_part_rows
    config = TransactionConfig(n_rows=args.load_rows, seed=7)
    inputs = inputs_of(DataKnobs(data_mapping="customer_terminal"))
    with (
        tempfile.TemporaryDirectory(prefix="bench-dask-load-", dir=args.load_dir) as work,
        local_client(workers=args.dask_workers, memory_limit=args.dask_memory) as client,
    ):
        parts, made_s = timed(lambda: dask_steps.generate_transactions(client, config, f"{work}/raw"))
        windows = {name: f"{work}/{name}" for name in data.SPLITS}
        result, load_s = timed(
            lambda: load_transactions(client, f"{work}/raw", inputs, "", DataKnobs().fractions, windows)
        )
    rows = sum(result.rows.values())
    print(
        f"dask load ({rows:,} generated transactions in {parts} parts, {len(inputs.features.names)} features, "
        f"{args.dask_workers} workers of {args.dask_memory}): generated in {made_s:.1f} s; checked, ordered, "
        f"featured, split and written in {load_s:.1f} s ({load_s / rows * 1e6:.1f} s per million rows); "
        f"windows {result.rows}; phases {', '.join(f'{k} {v:.1f} s' for k, v in result.seconds.items())}"
    )


def online(args: argparse.Namespace) -> None:
    from fraud_detection.features.redis_store import RedisStateStore
    from fraud_detection.features.store import SQLiteStateStore

    feature_set = card_terminal_features()
    frame = synthetic(args.online_rows, cards=2_000, terminals=200, seed=5)
    transactions = [
        Transaction(
            tx_id=r.tx_id,
            event_time=r.event_time,
            amount=r.amount,
            keys={"card": r.key_card, "terminal": r.key_terminal},
        )
        for r in frame.itertuples()
    ]
    warm, probe = transactions[: -args.probes], transactions[-args.probes :]
    with redis_server() as redis_url, tempfile.TemporaryDirectory() as work:
        makers = {
            "embedded (SQLite)": lambda: SQLiteStateStore(Path(work) / "state.db", horizon=feature_set.horizon),
            "redis": lambda: RedisStateStore(redis_url, horizon=feature_set.horizon),
        }
        for name, make in makers.items():
            store = make()
            _, apply_s = timed(lambda store=store: [store.apply(tx) for tx in warm])
            cold = []
            for tx in probe[:20]:  # a fresh store object: nothing cached, the whole state parsed
                fresh = make()
                start = time.perf_counter()
                features_for(tx, fresh.read(tx.keys), feature_set)
                cold.append(time.perf_counter() - start)
                fresh.close()
            latencies, applies = [], []
            for tx in probe:  # as the stream does: read and score, then apply
                start = time.perf_counter()
                features_for(tx, store.read(tx.keys), feature_set)
                middle = time.perf_counter()
                store.apply(tx)
                latencies.append(middle - start)
                applies.append(time.perf_counter() - middle)
            events = sum(len(s) for s in store.read(probe[-1].keys).values())
            ms = np.array(latencies) * 1000
            print(
                f"online {name:18s}: read + compute per row median {np.median(ms):.2f} ms, p99 "
                f"{np.percentile(ms, 99):.2f} ms; first read in a fresh process median {np.median(cold) * 1000:.2f} ms "
                f"({events} events in the last row's state; apply {np.median(applies) * 1e6:.0f} us/row, "
                f"warm-up apply {apply_s / len(warm) * 1e6:.0f} us/row)"
            )
            store.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--rows", type=int, default=6_362_620)
    parser.add_argument("--cards", type=int, default=500_000)
    parser.add_argument("--terminals", type=int, default=10_000)
    parser.add_argument("--pandas-rows", type=int, default=6_362_620, help="0: skip pandas")
    parser.add_argument("--online-rows", type=int, default=60_000)
    parser.add_argument("--probes", type=int, default=2_000)
    parser.add_argument("--dask-rows", type=int, default=6_362_620, help="0: skip Dask")
    parser.add_argument("--dask-part-rows", type=int, default=1_000_000)
    parser.add_argument("--dask-workers", type=int, default=2)
    parser.add_argument("--dask-memory", default="6GiB", help="memory limit per worker")
    parser.add_argument("--dask-check-up-to", type=int, default=2_000_000, help="compare with local up to N rows")
    parser.add_argument("--load-rows", type=int, default=3_000_000, help="dask-load: generated raw transactions")
    parser.add_argument("--load-dir", default=None, help="dask-load: where the parts and windows go (a temp dir)")
    parser.add_argument(
        "--only", choices=("offline", "dask", "online", "dask-load"), help="run one part (dask-load: only when named)"
    )
    args = parser.parse_args()
    if args.only in (None, "offline"):
        offline(args)
    if args.only in (None, "dask") and args.dask_rows > 0:
        on_dask(args)
    if args.only in (None, "online"):
        online(args)
    if args.only == "dask-load":
        dask_load(args)


if __name__ == "__main__":
    main()
