"""Load-test the model server with wrk on loopback, beside its floors, and write the tables to docs/serving.md.

What runs, all on this machine (wrk shares the cores with the server):

* a reference app written here to do what the FastAPI fraud apps our users come from do per request
  (:data:`REFERENCE_APP`: FastAPI, a pydantic body of the 29 features of their README's body, a pandas DataFrame,
  a scikit-learn decision tree, an OpenTelemetry BatchSpanProcessor exporting OTLP, a JSON log line), 1 worker;
* the model server (``python -m serving``) serving the default champion, the blend of XGBoost and the MLP, with
  tracing ON (every request recorded, OTLP/gRPC to a
  real receiver in this process) and JSON logging ON (stdout to a file): V1 single-row req/s and p50/p99
  at 32 and 100 connections with 1 and 2 worker processes, V2 batches of 1,000 rows in rows/s; the receiver's
  span count against two spans per request answered (no span lost);
* the HTTP floor: bare uvicorn (httptools, uvloop) answering a constant JSON body, with as many workers;
* the model floor: the served model's in-process ``predict_proba`` (one row, and 1,000-row batches);
* a soak run at 100 connections: non-2xx count and the server's RSS sampled every 2 s;
* every model family side by side (``--families``): XGBoost, the MLP and their blend trained on the same data,
  each one's in-process floor and the model server's V1 single-row req/s and p50/p99 (1 worker, 32
  connections), one family after the other in one run.

Usage: ``python benchmarks/bench_serving.py [--duration 15] [--soak 60] [--workers 1,2] [--no-write]``, or
``python benchmarks/bench_serving.py --families [--duration 15] [--no-write]`` for the family table only.
Needs ``wrk`` (Debian: ``apt-get install -y wrk``).
"""

from __future__ import annotations

import argparse
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from dataclasses import dataclass
from pathlib import Path

# The in-process floors run with NumPy's BLAS held to one thread, as the model server holds it
# (serving.main.serve): set before NumPy loads.
for _name in ("OPENBLAS_NUM_THREADS", "OMP_NUM_THREADS", "MKL_NUM_THREADS"):
    os.environ.setdefault(_name, "1")

import numpy as np  # noqa: E402

REPO = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(REPO))

from fraud_detection.schema import FEATURES  # noqa: E402
from tests.conftest import free_port, stop_process, wait_http  # noqa: E402
from tests.serving.otlp import OtlpReceiver  # noqa: E402

DOC = REPO / "docs" / "serving.md"
START, END = "<!-- bench:start -->", "<!-- bench:end -->"
FAMILY_START, FAMILY_END = "<!-- bench-families:start -->", "<!-- bench-families:end -->"
BATCH_ROWS = 1_000

BARE_APP = """
BODY = b'{"predictions":[{"fraud_probability":0.001,"is_fraud":false,"model_version":"1"}]}'


async def app(scope, receive, send):
    if scope["type"] != "http":
        return
    while (await receive()).get("more_body"):
        pass
    await send({"type": "http.response.start", "status": 200,
                "headers": [(b"content-type", b"application/json"), (b"content-length", str(len(BODY)).encode())]})
    await send({"type": "http.response.body", "body": BODY})
"""


REFERENCE_APP = """
import json, logging, os, sys, time

import joblib
import pandas as pd
from fastapi import FastAPI
from opentelemetry import trace
from opentelemetry.exporter.otlp.proto.grpc.trace_exporter import OTLPSpanExporter
from opentelemetry.sdk.resources import Resource
from opentelemetry.sdk.trace import TracerProvider
from opentelemetry.sdk.trace.export import BatchSpanProcessor
from pydantic import BaseModel, create_model

FEATURES = [f"V{i}" for i in range(1, 29)] + ["Amount"]
Transaction = create_model("Transaction", __base__=BaseModel, **{name: (float, ...) for name in FEATURES})
provider = TracerProvider(resource=Resource.create({"service.name": "reference"}))
provider.add_span_processor(BatchSpanProcessor(OTLPSpanExporter(endpoint=os.environ["OTLP"], insecure=True)))
trace.set_tracer_provider(provider)
tracer = trace.get_tracer("reference")
logging.basicConfig(stream=sys.stdout, level=logging.INFO, format="%(message)s")
log = logging.getLogger("reference")
model = joblib.load(os.environ["TREE"])
app = FastAPI(telemetry={"tracing": True, "metrics": False, "logs": False})


@app.post("/predict")
def predict(transaction: Transaction) -> dict:
    started = time.perf_counter()
    with tracer.start_as_current_span("predict"):
        frame = pd.DataFrame([transaction.model_dump()])
        probability = float(model.predict_proba(frame)[0, 1])
    context = trace.get_current_span().get_span_context()
    log.info(json.dumps({"severity": "INFO", "message": "prediction", "fraud_probability": probability,
                         "latency_ms": (time.perf_counter() - started) * 1000, "trace": f"{context.trace_id:032x}"}))
    return {"fraud_probability": probability, "is_fraud": probability >= 0.5}
"""
"""The reference: the single-transaction FastAPI app of the projects our users come from, written as they write it
(a sync endpoint, so FastAPI runs it in its thread pool), on the body of their README's ``wrk`` script."""


def make_tree(directory: Path) -> Path:
    """The reference app's model: a scikit-learn decision tree on the same synthetic data, saved with joblib."""
    import joblib
    import pandas as pd
    from sklearn.tree import DecisionTreeClassifier

    from fraud_detection import synth
    from fraud_detection.boosting import features_and_label

    x, y = features_and_label(synth.generate(synth.SyntheticConfig(n_rows=100_000, seed=5)))
    tree = DecisionTreeClassifier(max_depth=8, random_state=0).fit(pd.DataFrame(x, columns=FEATURES), y)
    path = directory / "tree.joblib"
    joblib.dump(tree, path)
    return path


def make_family_models(work: Path) -> dict[str, Path]:
    """XGBoost, the MLP and their blend, trained with the pipeline's defaults on the same synthetic data."""
    from fraud_detection import synth
    from fraud_detection.boosting import TrainParams, features_and_label
    from fraud_detection.families.fit import fit_blend, fit_family
    from fraud_detection.modeldir import ModelMetadata, save_model_dir

    frame = synth.generate(synth.SyntheticConfig(n_rows=100_000, seed=5))
    cut = int(len(frame) * 0.75)
    x_train, y_train = features_and_label(frame.iloc[:cut])
    x_valid, y_valid = features_and_label(frame.iloc[cut:])
    fits = {f: fit_family(f, x_train, y_train, x_valid, y_valid, TrainParams()) for f in ("xgboost", "mlp")}
    fits["blend"] = fit_blend(list(fits.values()), x_valid, y_valid)
    return {
        family: save_model_dir(
            fitted.model, ModelMetadata(model_version="bench", threshold=fitted.threshold), work / family
        )
        for family, fitted in fits.items()
    }


def sample(n: int, seed: int = 0) -> np.ndarray:
    from fraud_detection import synth
    from fraud_detection.boosting import features_and_label

    frame = synth.generate(synth.SyntheticConfig(n_rows=max(n, 2_000), seed=seed))
    return features_and_label(frame)[0][:n]


def lua_script(path: Path, body: str) -> Path:
    escaped = body.replace("\\", "\\\\").replace("'", "\\'")
    path.write_text(f"wrk.method = 'POST'\nwrk.headers['Content-Type'] = 'application/json'\nwrk.body = '{escaped}'\n")
    return path


@dataclass
class WrkResult:
    requests_per_s: float
    p50_ms: float
    p99_ms: float
    requests: int
    non_2xx: int
    socket_errors: int


def _ms(text: str) -> float:
    value, unit = re.fullmatch(r"([\d.]+)(us|ms|s)", text).groups()  # type: ignore[union-attr]
    return float(value) * {"us": 0.001, "ms": 1.0, "s": 1000.0}[unit]


def wrk(url: str, script: Path, connections: int, seconds: int, threads: int = 2) -> WrkResult:
    command = ["wrk", f"-t{threads}", f"-c{connections}", f"-d{seconds}s", "--latency", "--timeout", "10s"]
    out = subprocess.run([*command, "-s", str(script), url], capture_output=True, text=True, timeout=seconds + 60)
    text = out.stdout
    if out.returncode != 0 or "Requests/sec" not in text:
        raise RuntimeError(f"wrk failed: {out.stdout}\n{out.stderr}")
    percentiles = dict(re.findall(r"^\s+(\d+)%\s+(\S+)\s*$", text, re.MULTILINE))
    errors = re.search(r"Socket errors: connect (\d+), read (\d+), write (\d+), timeout (\d+)", text)
    non_2xx = re.search(r"Non-2xx or 3xx responses: (\d+)", text)
    return WrkResult(
        requests_per_s=float(re.search(r"Requests/sec:\s+([\d.]+)", text).group(1)),  # type: ignore[union-attr]
        p50_ms=_ms(percentiles["50"]),
        p99_ms=_ms(percentiles["99"]),
        requests=int(re.search(r"(\d+) requests in", text).group(1)),  # type: ignore[union-attr]
        non_2xx=int(non_2xx.group(1)) if non_2xx else 0,
        socket_errors=sum(int(g) for g in errors.groups()) if errors else 0,
    )


def model_floor(model_dir: Path, rows: np.ndarray, seconds: float = 3.0) -> tuple[float, float]:
    """In-process ``predict_proba`` of the loaded model (what the server calls): single rows per second, and rows
    per second in 1,000-row batches."""
    from fraud_detection.modeldir import load_model_dir

    model, _ = load_model_dir(model_dir)
    model.set_threads(1)
    one, batch = rows[:1], rows[:BATCH_ROWS]

    def rate(x: np.ndarray) -> float:
        model.predict_proba(x)
        n, started = 0, time.perf_counter()
        while time.perf_counter() - started < seconds:
            model.predict_proba(x)
            n += 1
        return n * len(x) / (time.perf_counter() - started)

    return rate(one), rate(batch)


class Server:
    def __init__(self, command: list[str], env: dict[str, str], log: Path, ready_path: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self._log = log.open("w")
        self.process = subprocess.Popen(
            [*command, "--port", str(self.port)], cwd=REPO, env=env, stdout=self._log, stderr=subprocess.STDOUT
        )
        wait_http(self.url + ready_path, process=self.process, log=log)

    def rss_mb(self) -> float:
        import psutil

        process = psutil.Process(self.process.pid)
        return sum(p.memory_info().rss for p in [process, *process.children(recursive=True)]) / 2**20

    def stop(self) -> None:
        stop_process(self.process, timeout=30)
        self._log.close()


def warm_up(url: str, script: Path, tries: int = 10) -> int:
    """Short wrk runs until one gets no error (each worker process loads its own model); the requests answered."""
    answered = 0
    for _ in range(tries):
        result = wrk(url, script, 32, 3)
        answered += result.requests
        if result.non_2xx + result.socket_errors == 0:
            break
    return answered


def soak(server: Server, script: Path, url: str, seconds: int) -> tuple[WrkResult, list[float]]:
    samples: list[float] = []
    done = threading.Event()

    def sample_rss() -> None:
        while not done.wait(2.0):
            samples.append(server.rss_mb())

    sampler = threading.Thread(target=sample_rss, daemon=True)
    sampler.start()
    try:
        result = wrk(url, script, 100, seconds)
    finally:
        done.set()
        sampler.join(timeout=5)
    return result, samples


def table(rows: list[list[str]], header: list[str]) -> str:
    lines = ["| " + " | ".join(header) + " |", "|" + "|".join(" --- " for _ in header) + "|"]
    lines += ["| " + " | ".join(row) + " |" for row in rows]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--duration", type=int, default=15, help="seconds per wrk run")
    parser.add_argument("--soak", type=int, default=60, help="seconds of the 100-connection soak run (0 = skip)")
    parser.add_argument(
        "--workers",
        type=lambda text: sorted({int(w) for w in text.split(",")}),
        default=[1, 2],
        help="comma-separated worker counts to measure; the soak runs the largest (default 1,2: one per core)",
    )
    parser.add_argument("--no-write", action="store_true", help="print only, do not update docs/serving.md")
    parser.add_argument("--families", action="store_true", help="only the table of model families, side by side")
    args = parser.parse_args(argv)
    if shutil.which("wrk") is None:
        print("wrk not found: apt-get install -y wrk", file=sys.stderr)
        return 2
    if args.families:
        return family_table(args.duration, not args.no_write)

    work = Path(tempfile.mkdtemp(prefix="bench-serving-"))
    # the default champion: the bake-off's blend of XGBoost and the MLP, as `make run` promotes it
    model_dir = make_family_models(work)["blend"]
    print("model: the blend of XGBoost and the MLP (the default champion)", file=sys.stderr)
    rows = sample(BATCH_ROWS)
    receiver = OtlpReceiver(keep=False)
    single = json.dumps({"instances": [dict(zip(FEATURES, map(float, rows[0]), strict=True))]})
    batch = json.dumps(
        {"inputs": [{"name": "transactions", "shape": [BATCH_ROWS, 29], "datatype": "FP32", "data": rows.tolist()}]}
    )
    v1_lua = lua_script(work / "v1.lua", single)
    flat_lua = lua_script(work / "flat.lua", json.dumps(dict(zip(FEATURES, map(float, rows[0]), strict=True))))
    v2_lua = lua_script(work / "v2.lua", batch)

    one_per_s, batch_rows_per_s = model_floor(model_dir, rows)
    print(f"model floor: {one_per_s:,.0f} single predictions/s, {batch_rows_per_s:,.0f} rows/s", file=sys.stderr)

    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    (work / "bare_app.py").write_text(BARE_APP)
    connections = (32, 100)
    single_rows: list[list[str]] = []

    def add_rows(label: str, workers: int, results: dict[int, WrkResult]) -> None:
        for c, r in results.items():
            single_rows.append(
                [
                    label,
                    str(workers),
                    str(c),
                    f"{r.requests_per_s:,.0f}",
                    f"{r.p50_ms:.1f}",
                    f"{r.p99_ms:.1f}",
                    str(r.non_2xx + r.socket_errors),
                ]
            )

    for workers in args.workers:
        bare = Server(
            [
                *(sys.executable, "-m", "uvicorn", "bare_app:app", "--host", "127.0.0.1", "--workers", str(workers)),
                *("--log-level", "warning", "--no-access-log", "--app-dir", str(work)),
            ],
            env,
            work / "bare.log",
            "/",
        )
        try:
            add_rows(
                "bare uvicorn, constant body (HTTP floor)",
                workers,
                {c: wrk(bare.url, v1_lua, c, args.duration) for c in connections},
            )
        finally:
            bare.stop()

    receiver_env = {**env, "OTLP": receiver.endpoint, "TREE": str(make_tree(work))}
    (work / "reference_app.py").write_text(REFERENCE_APP)
    reference = Server(
        [
            *(sys.executable, "-m", "uvicorn", "reference_app:app", "--host", "127.0.0.1", "--workers", "1"),
            *("--log-level", "warning", "--no-access-log", "--app-dir", str(work)),
        ],
        receiver_env,
        work / "reference.log",
        "/docs",
    )
    try:
        wrk(reference.url + "/predict", flat_lua, 32, 3)
        reference_results = {c: wrk(reference.url + "/predict", flat_lua, c, args.duration) for c in connections}
    finally:
        reference.stop()
    add_rows(
        "reference FastAPI app (pydantic, pandas, decision tree, OTLP spans, JSON log), flat body", 1, reference_results
    )

    server_env = {
        **env,
        "FRAUD_TRACING_EXPORTER": "otlp",
        "FRAUD_OTLP_ENDPOINT": receiver.endpoint,
        "FRAUD_GCP_PROJECT": "bench",
        "FRAUD_LOAD_RETRY_SECONDS": "1",
    }

    def model_server(workers: int, log_name: str, extra_env: dict[str, str] | None = None) -> Server:
        return Server(
            [sys.executable, "-m", "serving", "--host", "127.0.0.1", "--model-uri", str(model_dir)],
            {**server_env, "FRAUD_WORKERS": str(workers), **(extra_env or {})},
            work / log_name,
            "/v2/health/ready",
        )

    v1_path, v2_path = "/v1/models/fraud-detector:predict", "/v2/models/fraud-detector/infer"
    traced: dict[int, dict[int, WrkResult]] = {}
    log_lines = answered = 0
    spans_before = receiver.count
    for workers in args.workers:
        server = model_server(workers, f"server-{workers}.log")
        try:
            answered += warm_up(server.url + v1_path, v1_lua)
            traced[workers] = {c: wrk(server.url + v1_path, v1_lua, c, args.duration) for c in connections}
            answered += sum(r.requests for r in traced[workers].values())
        finally:
            server.stop()  # a stopped server has flushed its spans
        log_lines += sum(1 for _ in (work / f"server-{workers}.log").open())
        add_rows("model server, V1 single row", workers, traced[workers])
    spans = receiver.settled_count() - spans_before

    quiet = model_server(1, "quiet.log", {"FRAUD_TRACING_EXPORTER": "none", "FRAUD_LOG_LEVEL": "WARNING"})
    try:
        warm_up(quiet.url + v1_path, v1_lua)
        add_rows(
            "model server, V1 single row, tracing OFF, no request logs (for comparison)",
            1,
            {c: wrk(quiet.url + v1_path, v1_lua, c, args.duration) for c in connections},
        )
    finally:
        quiet.stop()

    headline = max(args.workers)
    server = model_server(1, "server-v2.log")
    try:
        v2_result = wrk(server.url + v2_path, v2_lua, 4, args.duration)
    finally:
        server.stop()
    soak_result: WrkResult | None = None
    rss: list[float] = []
    if args.soak:
        server = model_server(headline, "server-soak.log")
        try:
            warm_up(server.url + v1_path, v1_lua)
            soak_result, rss = soak(server, v1_lua, server.url + v1_path, args.soak)
        finally:
            server.stop()

    def mark(ok: bool) -> str:
        return "yes" if ok else "**no**"

    v2_rows_per_s = v2_result.requests_per_s * BATCH_ROWS
    one, two = traced.get(1, {}), traced.get(2, {})
    ratio = one[32].requests_per_s / reference_results[32].requests_per_s if 32 in one else 0.0
    targets = []
    if one:
        targets += [
            ["1 worker, V1 single row, 32 connections: >= 2,500 req/s", f"{one[32].requests_per_s:,.0f} req/s"],
            ["1 worker, 100 connections: p99 <= 150 ms", f"{one[100].p99_ms:.1f} ms"],
        ]
    if two:
        errors = sum(r.non_2xx + r.socket_errors for r in two.values())
        targets.append(
            ["2 workers, 100 connections: p99 <= 60 ms, no errors", f"{two[100].p99_ms:.1f} ms, {errors} errors"]
        )
    met = [
        *([one[32].requests_per_s >= 2500, one[100].p99_ms <= 150] if one else []),
        *([two[100].p99_ms <= 60 and errors == 0] if two else []),
    ]
    targets.append(
        ["no span lost: spans received >= 2 per request answered", f"{spans:,} spans for {answered:,} requests"]
    )
    met.append(spans >= 2 * answered)
    targets.append(["batched rows/s >= 100,000", f"{v2_rows_per_s:,.0f}"])
    met.append(v2_rows_per_s >= 100_000)
    out = [
        f"Machine: {os.cpu_count()} cores shared by wrk (2 threads) and the server, "
        f"load average {os.getloadavg()[0]:.1f} at the end; model server with tracing ON (every request "
        f"recorded, OTLP/gRPC to a receiver in the benchmark's process) and JSON logs ON ({log_lines:,} lines "
        f"written by the traced runs); wrk {args.duration} s per run. One worker, 32 connections: "
        f"{ratio:.1f}x the reference app's req/s.",
        "",
        table(single_rows, ["endpoint", "workers", "connections", "req/s", "p50 ms", "p99 ms", "errors + non-2xx"]),
        "",
        table(
            [
                ["the blend in process, one row per call (model floor)", f"{one_per_s:,.0f} rows/s"],
                [f"the blend in process, {BATCH_ROWS:,}-row batches (model floor)", f"{batch_rows_per_s:,.0f} rows/s"],
                [
                    f"model server (1 worker), V2 FP32 [{BATCH_ROWS:,}, 29] tensors, 4 connections",
                    f"{v2_rows_per_s:,.0f} rows/s (p50 {v2_result.p50_ms:.0f} ms, p99 {v2_result.p99_ms:.0f} ms)",
                ],
            ],
            ["batched scoring", "throughput"],
        ),
        "",
        table([[*row, mark(ok)] for row, ok in zip(targets, met, strict=True)], ["target", "measured", "met"]),
    ]
    if soak_result is not None:
        steady = rss[len(rss) // 4 :] or rss
        out += [
            "",
            f"Soak ({headline} worker{'s' if headline > 1 else ''}, tracing and logs ON): {args.soak} s at 100 "
            f"connections: {soak_result.requests:,} requests, "
            f"{soak_result.requests_per_s:,.0f} req/s, {soak_result.non_2xx} non-2xx, "
            f"{soak_result.socket_errors} socket errors; server RSS (all processes) {rss[0]:.0f} MB at start, "
            f"{min(steady):.0f}-{max(steady):.0f} MB after the first quarter, {rss[-1]:.0f} MB at the end "
            f"({len(rss)} samples, every 2 s).",
        ]
    text = "\n".join(out)
    print(text)
    if not args.no_write:
        write_section(text, START, END, "benchmarks/bench_serving.py")
    receiver.stop()
    shutil.rmtree(work, ignore_errors=True)
    return 0


def write_section(text: str, start: str, end: str, command: str) -> None:
    """Replace the text between ``start`` and ``end`` in docs/serving.md with ``text`` and a dated stamp."""
    if not DOC.exists():
        return
    doc = DOC.read_text()
    if start in doc and end in doc:
        head, _, rest = doc.partition(start)
        _, _, tail = rest.partition(end)
        stamp = time.strftime("%Y-%m-%d", time.gmtime())
        DOC.write_text(f"{head}{start}\n_Measured {stamp} by `{command}`._\n\n{text}\n{end}{tail}")
        print(f"updated {DOC.relative_to(REPO)}", file=sys.stderr)


def family_table(duration: int, write: bool) -> int:
    """Each model family's floor and served V1 single-row latency, one after the other in one run."""
    work = Path(tempfile.mkdtemp(prefix="bench-families-"))
    dirs = make_family_models(work)
    rows = sample(BATCH_ROWS)
    single = json.dumps({"instances": [dict(zip(FEATURES, map(float, rows[0]), strict=True))]})
    v1_lua = lua_script(work / "v1.lua", single)
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")}
    env |= {"FRAUD_TRACING_EXPORTER": "none", "FRAUD_LOG_LEVEL": "WARNING", "FRAUD_LOAD_RETRY_SECONDS": "1"}
    lines = []
    for family, directory in dirs.items():
        one, batch = model_floor(directory, rows)
        server = Server(
            [sys.executable, "-m", "serving", "--host", "127.0.0.1", "--model-uri", str(directory)],
            {**env, "FRAUD_WORKERS": "1"},
            work / f"{family}.log",
            "/v2/health/ready",
        )
        try:
            wrk(server.url + "/v1/models/fraud-detector:predict", v1_lua, 32, 3)
            served = wrk(server.url + "/v1/models/fraud-detector:predict", v1_lua, 32, duration)
        finally:
            server.stop()
        lines.append(
            [
                family,
                f"{one:,.0f}",
                f"{batch:,.0f}",
                f"{served.requests_per_s:,.0f}",
                f"{served.p50_ms:.1f}",
                f"{served.p99_ms:.1f}",
                str(served.non_2xx + served.socket_errors),
            ]
        )
        print(" | ".join(lines[-1]), file=sys.stderr)
    text = "\n".join(
        [
            f"Machine: {os.cpu_count()} cores shared by wrk (2 threads) and the server, load average "
            f"{os.getloadavg()[0]:.1f} at the end; model server with 1 worker, tracing OFF and no request logs; "
            f"wrk {duration} s at 32 connections per family, one family after the other.",
            "",
            table(
                lines,
                [
                    "family",
                    "in-process rows/s, one row per call",
                    f"in-process rows/s, {BATCH_ROWS:,}-row batches",
                    "server V1 req/s",
                    "p50 ms",
                    "p99 ms",
                    "errors + non-2xx",
                ],
            ),
        ]
    )
    print(text)
    if write:
        write_section(text, FAMILY_START, FAMILY_END, "benchmarks/bench_serving.py --families")
    shutil.rmtree(work, ignore_errors=True)
    return 0


if __name__ == "__main__":
    sys.exit(main())
