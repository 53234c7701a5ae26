"""The predictor's single-row V1 throughput on raw transactions beside the public-schema path, in one run.

What runs, all on this machine (wrk shares the cores with the server), one server at a time, 1 worker, tracing off:

* the public-schema path: a small XGBoost model on the 29 public features, one V1 row of named features per request;
* the raw-transaction path: a model of the same size on 14 engineered features (card and terminal windows,
  terminal risk from known labels, amount, hour, channel), one V1 row of source columns per request. Requests go
  through the test window's transactions in time order (a wrk Lua script cycling through them), so each reads a
  real card's and terminal's state; the store was filled with the rows before the window. Each store read only
  (the stream scorer is the only writer, as DESIGN.md and the cluster overlay have it) and applying each
  transaction after scoring it (``fraud serve`` on its own, with no stream): the embedded SQLite file, and Redis
  (when ``redis-server`` is installed);
* the server process's CPU time per answered request (all its threads), which the other jobs on a shared machine
  move far less than req/s;
* in process, the lookup's own cost per transaction: the store read, ``features_for`` and the apply; and for the
  read-only predictor, per single-row request: the body parsed, ``StateLookup.compute``, and its read and
  ``features_for`` alone;
* **side by side** (the verdict): the public and the read-only raw servers (SQLite, and Redis when installed) up at
  once, then ``--bursts`` rounds of one short wrk run against each in turn, the order reversed every other round.
  Each raw run is then seconds from a public run, so the noise of a shared machine, which moves a 10-second run by
  half, moves both sides of a ratio alike; the verdict is the median of the rounds' ratios.

Usage: ``python benchmarks/bench_transactions_serving.py [--duration 10] [--connections 32] [--rows 30000]
[--rounds 1] [--bursts 10] [--burst-seconds 2]``; each round's ratios are to that round's public run.
Needs ``wrk`` (Debian: ``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import shutil
import statistics
import sys
import tempfile
import time
from collections.abc import Callable, Iterator
from contextlib import contextmanager, nullcontext
from dataclasses import dataclass
from pathlib import Path

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_serving import Server, WrkResult, table, wrk  # noqa: E402

from fraud_detection.features.online import features_for  # noqa: E402
from fraud_detection.features.store import EntityStateStore, SQLiteStateStore  # noqa: E402
from fraud_detection.schema import FEATURES  # noqa: E402
from tests.conftest import redis_server  # noqa: E402
from tests.serving.conftest import make_model_dir  # noqa: E402
from tests.serving.transaction_model import TransactionModel, feature_set, make_transaction_model  # noqa: E402

V1 = "/v1/models/fraud-detector:predict"
TARGET = 0.8
"""Issue 24: the predictor's single-row V1 throughput on raw transactions, read only, against the public path."""


def rotating_script(path: Path, bodies: list[str], start: int = 0) -> Path:
    """A wrk Lua script that POSTs ``bodies`` one after the other from the ``start``-th (counting on past the last
    from the first again)."""
    quoted = ",\n".join("'" + body.replace("\\", "\\\\").replace("'", "\\'") + "'" for body in bodies)
    path.write_text(
        "wrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\n"
        f"bodies = {{\n{quoted}\n}}\ncounter = {start - 1}\n"
        "request = function()\n  counter = counter + 1\n"
        "  return wrk.format(nil, nil, nil, bodies[(counter % #bodies) + 1])\nend\n"
    )
    return path


def lookup_cost(model: TransactionModel, store: EntityStateStore, rows: range) -> tuple[float, float, float]:
    """Microseconds per transaction for the store read, ``features_for`` and the apply, in this process."""
    features = feature_set()
    read = compute = apply = 0.0
    for i in rows:
        transaction = model.transaction(i)
        started = time.perf_counter()
        states = store.read(dict(transaction.keys))
        read_done = time.perf_counter()
        features_for(transaction, states, features)
        computed = time.perf_counter()
        store.apply(transaction)
        apply += time.perf_counter() - computed
        compute += computed - read_done
        read += read_done - started
    n = len(rows) / 1e6
    return read / n, compute / n, apply / n


TRIP = 16
"""Requests a trip to the lookup's worker thread carries under the wrk load here (measured: 15 to 19 on average)."""


def read_only_cost(model: TransactionModel, opener: Callable[[], EntityStateStore], rows: range) -> dict[str, float]:
    """Microseconds per single-row V1 request of the read-only predictor's own steps, in this process: the body
    parsed (JSON and source columns), then one :meth:`StateLookup.compute` (the store read, ``features_for`` and
    the matrix) alone and in trips of ``TRIP`` requests as the server makes them under load (per request), and
    the read and ``features_for`` timed alone on the same states. Each pass runs the rows once before it is timed,
    as a server that has seen them."""
    import orjson

    from fraud_detection.modeldir import read_metadata
    from serving.raw_payload import RawSchema, parse_v1_raw
    from serving.state_store import StateLookup

    inputs = read_metadata(model.directory).transactions
    assert inputs is not None
    schema, lookup = RawSchema.of(inputs), StateLookup(inputs, opener, "benchmark", write=False)
    bodies = [orjson.dumps({"instances": [model.source_row(i)]}) for i in rows]
    parsed = [parse_v1_raw(orjson.loads(body), schema, "bench", 1) for body in bodies]
    roles = tuple(dict.fromkeys(a.entity for a in inputs.features.aggregates))
    store = lookup.store()
    states = [store.read({role: t[0].keys[role] for role in roles}) for t in parsed]
    trips = [[t for each in parsed[at : at + TRIP] for t in each] for at in range(0, len(parsed), TRIP)]
    steps: dict[str, Callable[[int], object]] = {
        "parse": lambda i: parse_v1_raw(orjson.loads(bodies[i]), schema, "bench", 1),
        "compute": lambda i: lookup.compute(parsed[i], write=False),
        f"compute in trips of {TRIP}": lambda i: i % TRIP or lookup.compute(trips[i // TRIP], write=False),
        "read": lambda i: store.read({role: parsed[i][0].keys[role] for role in roles}),
        "features_for": lambda i: features_for(parsed[i][0], states[i], inputs.features),
    }
    cost: dict[str, float] = {}
    for name, step in steps.items():
        for i in range(len(bodies)):
            step(i)
        started = time.perf_counter()
        for i in range(len(bodies)):
            step(i)
        cost[name] = 1e6 * (time.perf_counter() - started) / len(bodies)
    lookup.close()
    return cost


def _cost_line(store: str, cost: dict[str, float]) -> str:
    return f"in process, one request, read only ({store}): " + ", ".join(f"{k} {v:.1f} us" for k, v in cost.items())


@contextmanager
def filled_redis(model: TransactionModel) -> Iterator[str]:
    from fraud_detection.features.redis_store import RedisStateStore

    with redis_server() as url:
        store = RedisStateStore(url, horizon=feature_set().horizon)
        model.fill(store, model.test_start)
        store.close()
        yield url


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--rows", type=int, default=30_000, help="generated transactions (60 days)")
    parser.add_argument("--rounds", type=int, default=1, help="times to run every configuration, public first")
    parser.add_argument("--bursts", type=int, default=10, help="side-by-side rounds (0: none)")
    parser.add_argument("--burst-seconds", type=int, default=2, help="seconds of each side-by-side wrk run")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    work = Path(tempfile.mkdtemp(prefix="bench-transactions-serving-"))
    public_dir = make_model_dir(work / "public")
    model = make_transaction_model(work / "transactions", n_rows=args.rows, days=60)
    window = range(model.test_start, len(model.raw))
    print(f"{len(model.raw):,} transactions, window of {len(window):,}", file=sys.stderr)

    sqlite_path = work / "state.db"
    store = SQLiteStateStore(sqlite_path, horizon=feature_set().horizon)
    model.fill(store, model.test_start)
    store.close()
    snapshot = sqlite_path.read_bytes()  # every run starts from the same state

    public = json.dumps({"instances": [{name: 0.1 * (i % 7) for i, name in enumerate(FEATURES)}]})
    public_lua = rotating_script(work / "public.lua", [public])
    raw_bodies = [json.dumps({"instances": [model.source_row(i)]}) for i in window]
    raw_lua = rotating_script(work / "raw.lua", raw_bodies)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}

    def measure(model_dir: Path, script: Path, extra: dict[str, str], log: str) -> Measured:
        sqlite_path.write_bytes(snapshot)
        for suffix in ("-wal", "-shm"):
            Path(f"{sqlite_path}{suffix}").unlink(missing_ok=True)
        server = Server(
            [sys.executable, "-m", "serving", "--host", "127.0.0.1", "--model-uri", str(model_dir)],
            {**env, "FRAUD_FEATURE_STORE_PATH": str(sqlite_path), **extra},
            work / log,
            "/v2/health/ready",
        )
        try:
            wrk(server.url + V1, script, args.connections, 3, threads=1)  # warm-up
            before = server_cpu_seconds(server)
            result = wrk(server.url + V1, script, args.connections, args.duration, threads=1)
            cpu_us = 1e6 * (server_cpu_seconds(server) - before) / max(result.requests, 1)
        finally:
            server.stop()
        if result.non_2xx or result.socket_errors:
            raise RuntimeError(f"{log}: {result.non_2xx} non-2xx answers, {result.socket_errors} socket errors")
        return Measured(result, cpu_us)

    runs: list[tuple[str, Callable[[], Measured]]] = [
        ("public schema, 29 features", lambda: measure(public_dir, public_lua, {}, "public.log")),
        (
            "raw transaction, SQLite, read only (the stream applies)",
            lambda: measure(model.directory, raw_lua, {"FRAUD_FEATURE_STORE_WRITE": "false"}, "sqlite-ro.log"),
        ),
        ("raw transaction, SQLite, applied after scoring", lambda: measure(model.directory, raw_lua, {}, "sqlite.log")),
    ]
    have_redis = shutil.which("redis-server") is not None
    rows: list[list[str]] = []
    for round_ in range(args.rounds):
        measured = [(label, run()) for label, run in runs]
        baseline = measured[0][1]  # the public schema's
        rows += [_row(label, result, baseline) for label, result in measured]
        if have_redis:
            with filled_redis(model) as url:  # read only first: it leaves the state as it found it
                for label, write in (("read only (the cluster's setup)", "false"), ("applied after scoring", "true")):
                    extra = {"FRAUD_FEATURE_STORE_URL": url, "FRAUD_FEATURE_STORE_WRITE": write}
                    result = measure(model.directory, raw_lua, extra, f"redis-{write}.log")
                    rows.append(_row(f"raw transaction, Redis, {label}", result, baseline))
        if round_ + 1 < args.rounds:
            rows.append([""] * 7)

    store = SQLiteStateStore(work / "cost.db", horizon=feature_set().horizon)
    model.fill(store, model.test_start)
    read, compute, apply = lookup_cost(
        model, store, range(model.test_start, min(len(model.raw), model.test_start + 2000))
    )
    store.close()
    cost_rows = range(model.test_start, min(len(model.raw), model.test_start + 2000))
    horizon = feature_set().horizon
    (work / "read-only.db").write_bytes(snapshot)  # the state before the window, as the servers read it
    sqlite_cost = read_only_cost(
        model, lambda: SQLiteStateStore(work / "read-only.db", horizon, readonly=True), cost_rows
    )
    redis_cost = filled_redis(model) if have_redis else nullcontext(None)
    with redis_cost as cost_url:
        header = ["V1 single row, 1 worker", "req/s", "p50 ms", "p99 ms", "vs public", "server CPU us/req", "vs public"]
        print(f"\n{args.connections} connections, {args.duration} s per run, wrk on the same 2 cores\n")
        print(table(rows, header))
        print(
            f"\nin process, per transaction (SQLite): read {read:.0f} us, features_for {compute:.0f} us, "
            f"apply {apply:.0f} us"
        )
        print(_cost_line("SQLite", sqlite_cost))
        if cost_url is not None:
            from fraud_detection.features.redis_store import RedisStateStore

            redis_read_only = read_only_cost(model, lambda: RedisStateStore(cost_url, horizon), cost_rows)  # first
            redis_store = RedisStateStore(cost_url, horizon=feature_set().horizon)
            end = min(len(model.raw), model.test_start + 2000)
            r_read, r_compute, r_apply = lookup_cost(model, redis_store, range(model.test_start, end))
            redis_store.close()
            print(
                f"in process, per transaction (Redis): read {r_read:.0f} us, features_for {r_compute:.0f} us, "
                f"apply {r_apply:.0f} us"
            )
            print(_cost_line("Redis", redis_read_only))
    if args.bursts:
        (work / "side.db").write_bytes(snapshot)
        with filled_redis(model) if have_redis else nullcontext(None) as side_url:
            stores = {"SQLite": {"FRAUD_FEATURE_STORE_PATH": str(work / "side.db")}}
            if side_url is not None:
                stores["Redis"] = {"FRAUD_FEATURE_STORE_URL": side_url}
            configs = {"public": (public_dir, [public], {})}
            for name, where in stores.items():
                configs[name] = (model.directory, raw_bodies, {**where, "FRAUD_FEATURE_STORE_WRITE": "false"})
            print(side_by_side(work, env, configs, args.bursts, args.burst_seconds, args.connections))
    return 0


def side_by_side(
    work: Path,
    env: dict[str, str],
    configs: dict[str, tuple[Path, list[str], dict[str, str]]],
    bursts: int,
    seconds: int,
    connections: int,
) -> str:
    """Every server of ``configs`` (name: model directory, request bodies, settings; ``public`` first) up at once,
    warmed, then ``bursts`` rounds of a ``seconds``-long wrk run against each in turn, the order reversed every other
    round, each run going on through the bodies where the server's last one stopped (as one long run would): each raw
    server's req/s and CPU per request against the public server's in the same round, as Markdown lines with the
    verdict."""
    servers: dict[str, Server] = {}
    sent = dict.fromkeys(configs, 0)  # requests each server answered so far: where its next run starts

    def run(name: str, duration: int) -> WrkResult:
        script = rotating_script(work / f"side-{name}.lua", configs[name][1], sent[name])
        result = wrk(servers[name].url + V1, script, connections, duration, threads=1)
        sent[name] += result.requests
        return result

    try:
        for name, (model_dir, _, extra) in configs.items():
            command = [sys.executable, "-m", "serving", "--host", "127.0.0.1", "--model-uri", str(model_dir)]
            servers[name] = Server(command, {**env, **extra}, work / f"side-{name}.log", "/v2/health/ready")
            run(name, 3)  # warm-up
        seen: dict[str, list[Measured]] = {name: [] for name in servers}
        for round_ in range(bursts):
            order = list(servers) if round_ % 2 == 0 else list(reversed(servers))
            for name in order:
                server = servers[name]
                before = server_cpu_seconds(server)
                result = run(name, seconds)
                if result.non_2xx or result.socket_errors:
                    raise RuntimeError(f"side by side, {name}: {result.non_2xx} non-2xx, {result.socket_errors} errors")
                seen[name].append(Measured(result, 1e6 * (server_cpu_seconds(server) - before) / result.requests))
    finally:
        for server in servers.values():
            server.stop()
    public = seen["public"]
    lines = [
        f"\nSide by side: the servers up at once, {bursts} rounds of a {seconds}-s run against each in turn "
        f"(public at {min(m.wrk.requests_per_s for m in public):,.0f}–{max(m.wrk.requests_per_s for m in public):,.0f}"
        " req/s):\n"
    ]
    verdicts = []
    for name, measured in seen.items():
        if name == "public":
            continue
        rates = [m.wrk.requests_per_s / p.wrk.requests_per_s for m, p in zip(measured, public, strict=True)]
        cpus = [p.cpu_us / m.cpu_us for m, p in zip(measured, public, strict=True)]
        middle = statistics.median(rates)
        lines.append(
            f"- raw transaction, {name}, read only: req/s against public, median {middle:.2f}x "
            f"({', '.join(f'{r:.2f}' for r in rates)}); server CPU per request, public over raw, median "
            f"{statistics.median(cpus):.2f}x"
        )
        verdicts.append(f"{name} {middle:.2f}x, {'met' if middle >= TARGET else 'missed'}")
    lines.append(f"\nTarget: raw read only ≥ {TARGET}x the public path, median of the rounds: {'; '.join(verdicts)}.")
    return "\n".join(lines)


@dataclass(frozen=True)
class Measured:
    """One wrk run, and the server process's CPU time (all its threads, user and system) per answered request."""

    wrk: WrkResult
    cpu_us: float


def server_cpu_seconds(server: Server) -> float:
    """User and system CPU seconds the server process has used so far."""
    import psutil

    times = psutil.Process(server.process.pid).cpu_times()
    return float(times.user + times.system)


def _row(label: str, measured: Measured, baseline: Measured) -> list[str]:
    result = measured.wrk
    return [
        label,
        f"{result.requests_per_s:,.0f}",
        f"{result.p50_ms:.1f}",
        f"{result.p99_ms:.1f}",
        f"{result.requests_per_s / baseline.wrk.requests_per_s:.2f}x",
        f"{measured.cpu_us:.0f}",
        f"{baseline.cpu_us / measured.cpu_us:.2f}x",
    ]


if __name__ == "__main__":
    sys.exit(main())
