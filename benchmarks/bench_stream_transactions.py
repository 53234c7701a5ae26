"""The stream scorer on raw transactions with state updates, beside the same scorer only reading the state, and
the scorer on public-schema messages, side by side in one run through a real broker (Tansu on 127.0.0.1).

Every scorer below is up at once, each on topics of its own. The raw rows are cut into ``--rounds`` bursts; in
each round every scorer gets its burst in turn (the public one as many public messages), the order reversed every
other round, so each round's ratios compare bursts seconds apart on a shared, noisy machine. The verdict is the
median of the rounds' ratios.

* **public**: ``python -m streaming`` with a public-schema model (29 features): decode, score, write results.
* **raw, applied** (SQLite, then Redis): the same scorer with the raw-transaction test model
  (:mod:`tests.serving.transaction_model`): each batch applied and its entities read in one store call
  (``apply_and_read``: one SQLite transaction, or one Lua script on a real ``redis-server``), the batch's features
  computed, then scored. The rows are streamed in time order, keyed by customer, onto a store that holds the ``--warm``
  rows before them; the labels topic exists (empty), so each batch pays its check of the labels topic's end.
* **raw, separate applier**: an applier (``FRAUD_ROLE=applier``) applies the same rows to a store of its own, and a
  scorer with ``FRAUD_APPLY_TRANSACTIONS=false`` and ``FRAUD_WAIT_FOR_WRITER=true`` reads each batch once the
  applier has passed it; the time the scorer waited is printed.
* **raw, read only**: the same rows through a scorer with ``FRAUD_APPLY_TRANSACTIONS=false``: no state update, no
  label read; each batch's entities read in one call (``read_many``) and its features computed as the applying
  scorer computes them. Before each burst this process applies the rows before it to that scorer's store, so the
  store holds what a writer would have applied by then and stays still during the burst; the scorer read every row
  once before the rounds, so it holds every card and terminal, as one that has run a while does, and its first
  batches of a burst take the changes since the last. The first burst too: until it, that store holds the warm-up
  rows but the last burst's worth (until 2026-12-07 it held them all, so the first burst read no change and cost
  less than any other).
* Throughput = a burst's N / (first produce → last result read); the scorer's CPU time per transaction beside it.
* **where the time goes**: both scorers' store calls and features timed in this process on the same rows, in
  batches, with the store's own part (SQLite's statements, ``redis-server``'s script time).
* **ceiling**: the read-only scorer's CPU per transaction over that plus the store's own work in ``apply_and_read``
  less its own work in the read-only read: what a scorer that waits for its store's write would reach were
  everything else about applying free.
* ``--behind``: in this process, the read-only lookup beside a thread applying the same batches to its own file:
  the most a scorer that applies on a second thread could reach (see :func:`behind_cost`).
* **target** (issue 24): raw transactions per second with state updates at least 0.7x without them (read only).

    .venv/bin/python benchmarks/bench_stream_transactions.py [--rows 120000] [--warm 20000] [--days 72] [--rounds 6]

The bursts are 20,000 transactions (until 2026-12-06, 10,000 over 36 days): a scorer that waits for an applier
waits for the applier's first batch at the start of each burst, a cost a running stream pays once, so the longer
bursts come closer to a stream that does not stop. Until 2026-12-07 the stores started the rounds with 200 rows:
the read-only scorer's first burst read a store with next to no history while the applying one built its own, and
round 1 gave the lowest ratio of nearly every run. Every store now starts with ``--warm`` rows (12 days), as a
stream that has run a while does.
"""

from __future__ import annotations

import argparse
import json
import os
import queue
import sqlite3
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Callable, Iterator
from contextlib import ExitStack, contextmanager, nullcontext
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import orjson
import psutil

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "benchmarks"))

from bench_stream import FAST_GROUP, PARTITIONS, metric, timed  # noqa: E402

from fraud_detection import synth  # noqa: E402
from fraud_detection.features.online import Transaction  # noqa: E402
from fraud_detection.features.redis_store import RedisStateStore  # noqa: E402
from fraud_detection.features.store import EntityStateStore, SQLiteStateStore  # noqa: E402
from fraud_detection.schema import FEATURES  # noqa: E402
from serving.state_store import batch_features, read_entities  # noqa: E402
from streaming.produce import encode_transaction  # noqa: E402
from tests.conftest import free_port, redis_server, stop_process  # noqa: E402
from tests.serving.conftest import make_model_dir  # noqa: E402
from tests.serving.transaction_model import TransactionModel, feature_set, make_transaction_model  # noqa: E402

TARGET = 0.7

ROLES = tuple(dict.fromkeys(aggregate.entity for aggregate in feature_set().aggregates))
"""The roles the test model's aggregates read, as ``StateLookup`` reads them."""


@contextmanager
def scorer(
    broker: Any, model: Path, topics: str, log: Path, extra: dict[str, str], create: bool = True
) -> Iterator[psutil.Process]:
    """``python -m streaming`` on ``<topics>-in`` → ``<topics>-out`` (the topics made first with ``create``), stopped
    on exit."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env.update(
        {
            "FRAUD_MODEL_URI": str(model),
            "FRAUD_BOOTSTRAP_SERVERS": broker.bootstrap,
            "FRAUD_INPUT_TOPIC": f"{topics}-in",
            "FRAUD_OUTPUT_TOPIC": f"{topics}-out",
            "FRAUD_DEAD_LETTER_TOPIC": f"{topics}-dlq",
            "FRAUD_LABELS_TOPIC": f"{topics}-labels",
            "FRAUD_GROUP_ID": f"{topics}-scorer",
            "FRAUD_HOST": "127.0.0.1",
            "FRAUD_PORT": str(free_port()),
            "FRAUD_KAFKA_OPTIONS": json.dumps(FAST_GROUP),
            **extra,
        }
    )
    if create:
        broker.create_topics(f"{topics}-in", f"{topics}-out", f"{topics}-dlq", partitions=PARTITIONS)
        broker.create_topics(f"{topics}-labels", partitions=1)
    with log.open("w") as out:
        process = subprocess.Popen([sys.executable, "-m", "streaming"], cwd=REPO, env=env, stdout=out, stderr=out)
        try:
            yield psutil.Process(process.pid)
        finally:
            stop_process(process, timeout=30)


def raw_items(model: TransactionModel, rows: range, prefix: str) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
    """Raw messages (keyed by customer) for ``rows``, their ids prefixed so a run's results are told apart."""
    items, ids = [], []
    for i in rows:
        row = model.source_row(i)
        row["tx_id"] = f"{prefix}-{row['tx_id']}"
        items.append((str(row["customer_id"]).encode(), orjson.dumps(row)))
        ids.append(row["tx_id"].encode())
    return items, ids


BATCH = 2000
"""The scorer's ``batch_size`` (its default): a burst holds at least two full batches."""


@dataclass
class Config:
    """One scorer of the side-by-side run (with its applier, if any), on topics ``<name>-*``, and its figures."""

    name: str
    title: str
    model: Path
    env: dict[str, str]
    applier: dict[str, str] | None = None
    rates: list[float] = field(default_factory=list)
    """Transactions per second of each timed burst."""
    cpus: list[float] = field(default_factory=list)
    """The scorer's CPU µs per transaction of each timed burst."""
    applier_cpus: list[float] = field(default_factory=list)
    waited: list[float] = field(default_factory=list)
    """Seconds the scorer waited for its applier in each timed burst."""
    batches: list[float] = field(default_factory=list)
    """The scorer's mean batch size in each timed burst."""
    seconds: list[float] = field(default_factory=list)
    processes: list[psutil.Process] = field(default_factory=list)

    def start(self, stack: ExitStack, broker: Any, work: Path) -> None:
        """Start the scorer (and the applier) until ``stack`` closes."""
        self.processes.append(
            stack.enter_context(scorer(broker, self.model, self.name, work / f"{self.name}.log", self.env))
        )
        if self.applier is not None:
            log = work / f"{self.name}.applier.log"
            self.processes.append(
                stack.enter_context(scorer(broker, self.model, self.name, log, self.applier, create=False))
            )

    def burst(self, broker: Any, items: tuple[list[tuple[bytes, bytes]], list[bytes]], record: bool = True) -> None:
        """Produce ``items`` and read every result; with ``record``, keep the burst's figures."""
        wait = "fraud_stream_writer_wait_seconds_sum"
        before = [sum(each.cpu_times()[:2]) for each in self.processes]
        # scraped only for a timed burst: the scorers' /metrics may not be up before the warm-up's
        waited = scraped(self.processes[0], wait) if record and self.applier is not None else 0.0
        taken = scraped(self.processes[0], "fraud_stream_batch_seconds_count") if record else 0.0
        rate, _ = timed(broker, f"{self.name}-in", f"{self.name}-out", items[0], result_keys=items[1])
        if not record:
            return
        used = [sum(each.cpu_times()[:2]) - start for each, start in zip(self.processes, before, strict=True)]
        n = len(items[0])
        self.rates.append(float(rate))
        self.seconds.append(n / float(rate))
        self.cpus.append(used[0] / n * 1e6)
        self.batches.append(n / max(1.0, scraped(self.processes[0], "fraud_stream_batch_seconds_count") - taken))
        if self.applier is not None:
            self.applier_cpus.append(used[1] / n * 1e6)
            self.waited.append(scraped(self.processes[0], wait) - waited)


def filled(model: TransactionModel, where: dict[str, str], rows: range) -> None:
    """Apply ``rows`` to the store ``where`` names (``FRAUD_FEATURE_STORE_*``), in batches, in this process."""
    horizon = feature_set().horizon
    url = where.get("FRAUD_FEATURE_STORE_URL")
    store: EntityStateStore = (
        RedisStateStore(url, horizon=horizon) if url else SQLiteStateStore(where["FRAUD_FEATURE_STORE_PATH"], horizon)
    )
    transactions = [model.transaction(i) for i in rows]
    for start in range(0, len(transactions), BATCH):
        store.apply_many(transactions[start : start + BATCH])
    store.close()


def scraped(process: psutil.Process, name: str) -> float:
    """:func:`bench_stream.metric` of a scorer process (its ``/metrics`` port from its environment)."""
    return metric(f"http://127.0.0.1:{process.environ()['FRAUD_PORT']}", name)


class TimedConnection:
    """A ``sqlite3.Connection`` that adds up the seconds its ``execute`` and ``executemany`` calls take: the store's
    own work in SQLite (parsing, B-tree inserts and deletes, the commit), without the Python around them."""

    def __init__(self, connection: sqlite3.Connection) -> None:
        self.connection = connection
        self.seconds = 0.0

    def execute(self, *args: Any) -> sqlite3.Cursor:
        return self._timed(self.connection.execute, args)

    def executemany(self, *args: Any) -> sqlite3.Cursor:
        return self._timed(self.connection.executemany, args)

    def _timed(self, call: Callable[..., sqlite3.Cursor], args: tuple[Any, ...]) -> sqlite3.Cursor:
        started = time.perf_counter()
        try:
            return call(*args)
        finally:
            self.seconds += time.perf_counter() - started

    def __getattr__(self, name: str) -> Any:
        return getattr(self.connection, name)


def store_seconds(store: EntityStateStore, url: str | None) -> Callable[[], float]:
    """A clock of the store's own seconds so far: SQLite's statements (through :class:`TimedConnection`), or the
    time ``redis-server`` reports spending in scripts (``INFO commandstats``: ``eval`` and ``evalsha``)."""
    if url is None:
        assert isinstance(store, SQLiteStateStore)
        timed_connection = TimedConnection(store._conn)
        store._conn = timed_connection  # type: ignore[assignment]
        return lambda: timed_connection.seconds
    import redis

    client = redis.Redis.from_url(url)

    def scripts() -> float:
        stats = client.info("commandstats")
        return sum(float(v["usec"]) for k, v in stats.items() if k in ("cmdstat_eval", "cmdstat_evalsha")) / 1e6

    return scripts


def batch_cost(
    model: TransactionModel, store: EntityStateStore, own: Callable[[], float], n: int, batch: int
) -> tuple[float, float, float, float]:
    """Microseconds per transaction of the applying scorer's two steps, as ``StateLookup.apply_then_compute`` takes
    them: apply the batch and read its entities (``apply_and_read``), compute the batch's features; the store's own
    part of the first (``own``: see :func:`store_seconds`); and the entities handed per transaction."""
    apply = compute = stored = 0.0
    entities = 0
    for start in range(0, n, batch):
        chunk = [model.transaction(i) for i in range(start, min(start + batch, n))]
        before = own()
        started = time.perf_counter()
        _, states = store.apply_and_read(chunk)
        applied = time.perf_counter()
        stored += own() - before
        batch_features(chunk, states, feature_set())
        apply += applied - started
        compute += time.perf_counter() - applied
        entities += len(states)
    return apply / n * 1e6, stored / n * 1e6, compute / n * 1e6, entities / n


def read_cost(
    model: TransactionModel, store: EntityStateStore, own: Callable[[], float], n: int, batch: int
) -> tuple[float, float, float]:
    """Microseconds per transaction of the read-only scorer's two steps (``StateLookup.read_then_compute``): read
    the batch's entities (``read_many``), compute the batch's features; and the store's own part of the read."""
    read = compute = stored = 0.0
    for start in range(0, n, batch):
        chunk = [model.transaction(i) for i in range(start, min(start + batch, n))]
        before = own()
        started = time.perf_counter()
        states = read_entities(store, chunk, ROLES)
        done = time.perf_counter()
        stored += own() - before
        batch_features(chunk, states, feature_set())
        read += done - started
        compute += time.perf_counter() - done
    return read / n * 1e6, compute / n * 1e6, stored / n * 1e6


PRAGMAS = {
    "as shipped": (),
    "synchronous=OFF": ("PRAGMA synchronous=OFF",),
    "wal_autocheckpoint=10000": ("PRAGMA wal_autocheckpoint=10000",),
    "cache_size 64 MB": ("PRAGMA cache_size=-65536",),
    "mmap_size 256 MB": ("PRAGMA mmap_size=268435456",),
}
"""SQLite settings tried on the embedded store's writer (``--pragmas``), beside the store as shipped."""


def pragma_cost(model: TransactionModel, work: Path, n: int, batch: int, rounds: int = 2) -> list[str]:
    """Microseconds per transaction of ``apply_many`` on the same rows with each of :data:`PRAGMAS`, alternated
    ``rounds`` times, each on a new file."""
    transactions = [model.transaction(i) for i in range(n)]
    seen: dict[str, list[float]] = {name: [] for name in PRAGMAS}
    for round_number in range(rounds):
        for number, (name, pragmas) in enumerate(PRAGMAS.items()):
            store = SQLiteStateStore(work / f"pragma-{round_number}-{number}.db", horizon=feature_set().horizon)
            for pragma in pragmas:
                store._conn.execute(pragma)
            started = time.perf_counter()
            for start in range(0, n, batch):
                store.apply_many(transactions[start : start + batch])
            seen[name].append((time.perf_counter() - started) / n * 1e6)
            store.close()
    return [f"{name}: {', '.join(f'{us:.1f}' for us in each)} µs" for name, each in seen.items()]


def behind_cost(model: TransactionModel, work: Path, n: int, batch: int, rounds: int = 3) -> list[str]:
    """In this process, on SQLite, microseconds per transaction of three lookups over the same batches, alternated
    ``rounds`` times, each from a new reader or file:

    * **read only**: ``read_entities`` and ``batch_features`` over a file that already holds every row;
    * **write behind**: the same, while a second thread applies each batch (``apply_many``, one batch queued at
      most) to a file of its own: the most a scorer could get by applying batch k on another thread while it
      scores batch k + 1 (SQLite's statements let go of the interpreter lock; the Python around them does not);
    * **applied**: ``apply_and_read`` and ``batch_features``, as the applying scorer does.
    """
    transactions = [model.transaction(i) for i in range(n)]
    batches = [transactions[start : start + batch] for start in range(0, n, batch)]
    horizon = feature_set().horizon
    full = SQLiteStateStore(work / "behind-full.db", horizon=horizon)
    for each in batches:
        full.apply_many(each)
    full.close()

    def read_only(writer: SQLiteStateStore | None) -> float:
        reader = SQLiteStateStore(work / "behind-full.db", horizon=horizon, readonly=True)
        pending: queue.Queue[list[Transaction] | None] = queue.Queue(maxsize=1)
        thread = threading.Thread(target=_drain, args=(pending, writer)) if writer else None
        started = time.perf_counter()
        if thread:
            thread.start()
        for each in batches:
            batch_features(each, read_entities(reader, each, ROLES), feature_set())
            if thread:
                pending.put(each)
        if thread:
            pending.put(None)
            thread.join()
        reader.close()
        elapsed = time.perf_counter() - started
        if writer:
            writer.close()
        return elapsed / n * 1e6

    def applied(store: SQLiteStateStore) -> float:
        started = time.perf_counter()
        for each in batches:
            batch_features(each, store.apply_and_read(each)[1], feature_set())
        elapsed = time.perf_counter() - started
        store.close()
        return elapsed / n * 1e6

    lines = []
    for round_number in range(rounds):
        alone = read_only(None)
        behind = read_only(SQLiteStateStore(work / f"behind-{round_number}.db", horizon=horizon))
        apply = applied(SQLiteStateStore(work / f"applied-{round_number}.db", horizon=horizon))
        lines.append(
            f"round {round_number + 1}: read only {alone:.0f} µs, write behind {behind:.0f} µs "
            f"({alone / behind:.2f}x), applied {apply:.0f} µs ({alone / apply:.2f}x)"
        )
    return lines


def _drain(pending: queue.Queue[list[Transaction] | None], store: SQLiteStateStore) -> None:
    """Apply each batch put on ``pending`` until None."""
    while (batch := pending.get()) is not None:
        store.apply_many(batch)


def main() -> None:
    from tests.streaming.broker import Broker

    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rows", type=int, default=120_000, help="raw transactions timed, cut into the rounds' bursts")
    parser.add_argument(
        "--warm",
        type=int,
        default=20_000,
        help="raw transactions every store holds before the rounds (12 days at the default rate): the rounds start "
        "from a stream that has run a while, not from empty stores",
    )
    parser.add_argument("--profile-batch", type=int, default=500, help="batch size of the in-process profile")
    parser.add_argument("--profile-rows", type=int, default=20_000, help="rows of the in-process profile (the first)")
    parser.add_argument("--stores", default="sqlite,redis", help="which stores to run: sqlite, redis or both")
    parser.add_argument(
        "--rounds", type=int, default=6, help="rounds of bursts, one burst a scorer; the verdict is the median"
    )
    parser.add_argument(
        "--days",
        type=int,
        default=72,
        help="days the timed rows span (the warm-up rows come before them at the same rate): 72 (one transaction "
        "every 50 s at 120,000 rows), or ten times that for a sparse stream whose batches span days",
    )
    parser.add_argument(
        "--behind",
        action="store_true",
        help="only time, in this process on SQLite, the read-only lookup alone, beside a thread applying each batch, "
        "and the applying lookup, and stop",
    )
    parser.add_argument(
        "--pragmas", action="store_true", help="only time apply_many on SQLite with the settings in PRAGMAS, and stop"
    )
    args = parser.parse_args()
    if args.rounds < 1 or args.rows // args.rounds < 2 * BATCH:
        parser.error(f"--rows / --rounds must be at least {2 * BATCH:,} (two full batches a burst)")
    warm_rows = max(args.warm, 200)

    work = Path(tempfile.mkdtemp(prefix="bench-stream-transactions-"))
    span = round(args.days * (warm_rows + args.rows) / args.rows)
    model = make_transaction_model(work / "transactions", n_rows=warm_rows + args.rows, days=span)
    public_model = make_model_dir(work / "public")
    frame = synth.generate(synth.SyntheticConfig(n_rows=20_000, seed=7))
    values = [
        encode_transaction(dict(zip(FEATURES, map(float, row), strict=True)))
        for row in frame[list(FEATURES)].to_numpy()
    ]

    def public(n: int, prefix: str) -> tuple[list[tuple[bytes, bytes]], list[bytes]]:
        items = [(f"{prefix}-{i}".encode(), values[i % len(values)]) for i in range(n)]
        return items, [key for key, _ in items]

    warm, run = range(warm_rows), range(warm_rows, warm_rows + args.rows)
    if args.behind:
        print(f"Lookup per transaction, {args.rows:,} rows over {args.days} days, batches of {args.profile_batch}:")
        print("\n".join(f"- {line}" for line in behind_cost(model, work, len(run), args.profile_batch, args.rounds)))
        return
    if args.pragmas:
        print(f"apply_many per transaction, {args.rows:,} rows over {args.days} days, batches of {args.profile_batch}:")
        print("\n".join(f"- {line}" for line in pragma_cost(model, work, len(run), args.profile_batch)))
        return
    stores = args.stores.split(",")
    chunk = len(run) // args.rounds
    configs: list[Config] = [Config("public", "public schema, 29 features", public_model, {})]
    for store in stores:
        label = "SQLite" if store == "sqlite" else "Redis"
        configs += [
            Config(f"{store}-read", f"raw, {label}, read only", model.directory, {"FRAUD_APPLY_TRANSACTIONS": "false"}),
            Config(f"{store}-applied", f"raw, {label}, applied", model.directory, {}),
            Config(
                f"{store}-split",
                f"raw, {label}, separate applier",
                model.directory,
                {"FRAUD_APPLY_TRANSACTIONS": "false", "FRAUD_WAIT_FOR_WRITER": "true"},
                applier={"FRAUD_ROLE": "applier"},
            ),
        ]
    with ExitStack() as stack:
        broker = stack.enter_context(Broker(work / "tansu.log"))
        urls = {store: stack.enter_context(redis_server()) if store == "redis" else None for store in stores}
        for config in configs:
            store = config.name.split("-")[0]
            if config.name != "public":
                url = urls[store]
                where = (  # each configuration a store of its own: a file, or a Redis database
                    {"FRAUD_FEATURE_STORE_URL": f"{url[:-1]}{configs.index(config)}"}
                    if url
                    else {"FRAUD_FEATURE_STORE_PATH": str(work / f"{config.name}.db")}
                )
                config.env.update(where)
                if config.applier is not None:
                    config.applier.update(where)
                if config.name.endswith("-read"):  # filled up to a burst before the first, in this process; then
                    # before each burst, with the burst before it (below), whose changes that scorer reads
                    filled(model, where, range(max(0, warm_rows - chunk)))
            config.start(stack, broker, work)
        for config in configs:  # warm-up: the first rows (every row through the scorer that only reads: it holds
            # every card and terminal from then on, as a scorer that has run a while does)
            if config.name == "public":
                config.burst(broker, public(warm_rows, "w"), record=False)
            elif config.name.endswith("-read"):
                config.burst(broker, raw_items(model, range(warm_rows + args.rows), f"w{config.name}"), record=False)
            else:
                config.burst(broker, raw_items(model, warm, f"w{config.name}"), record=False)
        readers = [config for config in configs if config.name.endswith("-read")]
        # (the warm-up reads rows far ahead of that scorer's store: stale by its own count, and not what is asked)
        stale_before = [scraped(config.processes[0], "fraud_stream_stale_features_total") for config in readers]
        for number in range(args.rounds):
            rows = range(warm_rows + number * chunk, warm_rows + (number + 1) * chunk)
            order = configs if number % 2 == 0 else configs[::-1]
            for config in order:
                items = public(chunk, f"p{number}") if config.name == "public" else raw_items(model, rows, f"r{number}")
                if config.name.endswith("-read"):  # the store as the burst starts: what the writer applied before it
                    filled(model, config.env, range(max(0, rows.start - chunk), rows.start))
                config.burst(broker, items)
        stale = [
            f"{config.title}: {scraped(config.processes[0], 'fraud_stream_stale_features_total') - before:,.0f}"
            for config, before in zip(readers, stale_before, strict=True)
        ]
    lines: list[str] = []
    by_name = {config.name: config for config in configs}
    base = by_name["public"]
    verdicts = []
    for number in range(args.rounds):
        for config in configs:
            rate, cpu = config.rates[number], config.cpus[number]
            reference = by_name.get(f"{config.name.split('-')[0]}-read")
            versus = f"**{rate / reference.rates[number]:.2f}x**" if reference and reference is not config else ""
            applier = f" (applier {config.applier_cpus[number]:,.0f})" if config.applier_cpus else ""
            lines.append(
                f"| {number + 1} | {config.title} | {rate:,.0f} | {cpu:,.0f}{applier} | {versus} "
                f"| {rate / base.rates[number]:.2f}x | {config.batches[number]:,.0f} |"
            )
    for store in stores:
        read = by_name[f"{store}-read"]
        for how in ("applied", "split"):
            each = [r / b for r, b in zip(by_name[f"{store}-{how}"].rates, read.rates, strict=True)]
            middle = float(np.median(each))
            runs = ", ".join(f"{ratio:.2f}x" for ratio in each)
            title = by_name[f"{store}-{how}"].title
            verdicts.append(f"{title}: {runs}; median {middle:.2f}x, {'met' if middle >= TARGET else 'missed'}")
    waits = [
        f"{config.title}: {sum(config.waited):.2f} s of {sum(config.seconds):.2f} s"
        for config in configs
        if config.applier is not None
    ]
    read_cpus = {store: by_name[f"{store}-read"].cpus for store in stores}
    split: list[str] = []
    ceilings: list[str] = []
    for store in stores:
        with redis_server() if store == "redis" else nullcontext(None) as url:
            opened: EntityStateStore = (
                RedisStateStore(url, horizon=feature_set().horizon)
                if url
                else SQLiteStateStore(work / "profile.db", horizon=feature_set().horizon)
            )
            own_seconds = store_seconds(opened, url)
            profiled = min(len(run), args.profile_rows)
            apply, own, compute, entities = batch_cost(model, opened, own_seconds, profiled, args.profile_batch)
            read, read_compute, read_own = read_cost(model, opened, own_seconds, profiled, args.profile_batch)
            opened.close()
        split.append(
            f"{store}: applying, apply and read {apply:,.0f} µs (the store's own work {own:,.0f} µs, "
            f"{entities:.2f} entities handed), features {compute:,.0f} µs; read only, read {read:,.0f} µs, "
            f"features {read_compute:,.0f} µs"
        )
        whole, write = float(np.median(read_cpus[store])), own - read_own
        ceilings.append(f"{store}: {whole:,.0f} / ({whole:,.0f} + {write:,.0f}) = {whole / (whole + write):.2f}x")
    load = ", ".join(f"{value:.1f}" for value in os.getloadavg())
    print(
        "\n".join(
            [
                f"{os.cpu_count()} CPUs (load average {load} at the end), {PARTITIONS} partitions; every scorer up at "
                f"once, fed a burst of {chunk:,} transactions in turn, {args.rounds} rounds (the order reversed every "
                f"other round); {args.rows:,} raw transactions (over {args.days} days), each burst the next rows:",
                "",
                "| round | run | transactions/s | scorer CPU µs per transaction | vs read only | vs public "
                "| mean batch |",
                "| ---: | --- | ---: | ---: | ---: | ---: | ---: |",
                *lines,
                "",
                f"Target: raw with state updates ≥ {TARGET}x read only, each round's bursts side by side: "
                f"{'; '.join(verdicts)}.",
                "",
                f"The scorers that wait for the writer (an applier) waited for it: {'; '.join(waits)}.",
                "",
                "Transactions the read-only scorers scored more than the store's grace behind its latest event "
                f"(fraud_stream_stale_features_total, in the rounds): {'; '.join(stale)}.",
                "",
                f"The lookup in this process, per transaction, the first {profiled:,} rows from an empty store in "
                f"batches of {args.profile_batch}: {'; '.join(split)}.",
                "",
                "The most a scorer that waits for its store's write could reach, were every other cost of applying "
                "free: the read-only scorer's CPU per transaction (median of the rounds) over that plus what the "
                f"store's own work in applying exceeds its own work in reading: {'; '.join(ceilings)}.",
            ]
        )
    )


if __name__ == "__main__":
    main()
