"""Load+train on the Dask engine (a 2-worker LocalCluster) beside the local engine and the bare XGBoost floor.

For each size the script writes the synthetic data set as Parquet parts of a million rows, one at a time
(``fraud data generate --parts``), and, for the sizes where the local engine runs, the same rows as one
Parquet file (streamed, never held whole). Then, each in a fresh process:

XGBoost alone (``families=["xgboost"]``) on both engines, so the engines compare like with like.

* ``dask``  = the Dask load step, the XGBoost family's train step and the select step on a ``LocalCluster`` of
  2 single-threaded workers; the peak RSS of every process of the run (the client, which also hosts the
  scheduler, each worker and each nanny, from the kernel's ``VmHWM``) is printed.
* ``local`` = the local load step then train step (each in its own process, as in ``bench_train.py``),
  ``--repeats`` times; their median is compared with the median of as many runs of
* ``floor`` = bare ``xgboost.train`` on the same training arrays (see ``bench_train.py``).
* ``local r=…`` = the local engine with negative downsampling (``--negative-sample-rate``), once: its AUPRC
  beside the full model's.

Rounds are fixed (early stopping disabled) so every side does the same boosting work. Run (about 20 minutes):

    .venv/bin/python benchmarks/bench_dask.py                                   # 6,362,620 and 30M rows
    .venv/bin/python benchmarks/bench_dask.py --sizes 200000 --local-up-to 200000 --rounds 20 --repeats 1
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

from bench_train import LARGEST_PUBLIC, _child, print_head, save_json

PART_ROWS = 1_000_000

_DASK_CHILD = r'''
import json, sys, time
from pathlib import Path

import psutil

def high_water_mb(pid):
    """Peak resident memory of a process (VmHWM), in MB."""
    for line in Path(f"/proc/{pid}/status").read_text().splitlines():
        if line.startswith("VmHWM:"):
            return int(line.split()[1]) / 1024
    return float("nan")

def main():
    args = json.loads(sys.argv[1])
    work = Path(args["work"])
    rounds = args["rounds"]
    from fraud_detection import boosting, data
    from fraud_detection.config import DataKnobs
    from fraud_detection.engines import dask_cluster
    from fraud_detection.steps import dask_steps
    from fraud_detection.steps.bakeoff import select_step

    out = {name: str(work / "dask" / name) for name in data.SPLITS}
    with dask_cluster.local_client(args["workers"], args["memory"]) as client:
        started = time.perf_counter()
        loaded = dask_steps.dask_load_step(client, DataKnobs(data_uri=str(work / "parts")), out, str(work / "scratch"))
        load_s = time.perf_counter() - started
        started = time.perf_counter()
        params = boosting.TrainParams(n_rounds=rounds, early_stopping_rounds=rounds, families=["xgboost"])
        dask_steps.dask_xgboost_step(
            client, out["train"], out["validation"], params, work / "dask-xgboost", loaded.data_version
        )
        result = select_step(
            [work / "dask-xgboost"], out["train"], out["validation"], out["test"], params,
            work / "dask-model", f"sqlite:///{work}/mlflow-dask.db", "bench", loaded.data_version,
        )
        train_s = time.perf_counter() - started
        me = psutil.Process()
        processes = {"client+scheduler": high_water_mb(me.pid)}
        for child in me.children(recursive=True):
            try:
                role = "tracker" if "resource_tracker" in " ".join(child.cmdline()) else "worker"
                processes[f"{role} {child.pid}"] = high_water_mb(child.pid)
            except psutil.Error:
                pass
    print("RESULT " + json.dumps({"load_s": load_s, "train_s": train_s, "processes": processes,
                                  "test_auprc": result.metrics["test_auprc"]}))

if __name__ == "__main__":
    main()
'''


def _generate(rows: int, work: Path, single_file: bool) -> None:
    """The parts (in a subprocess, so no measured process inherits its memory), and the one-file copy."""
    parts = max(1, -(-rows // PART_ROWS))
    subprocess.run(
        [
            sys.executable,
            "-m",
            "cli.main",
            "data",
            "generate",
            "--rows",
            str(rows),
            "--seed",
            "11",
            "--parts",
            str(max(parts, 2)),
            "--output",
            str(work / "parts"),
        ],
        check=True,
        capture_output=True,
    )
    if single_file:
        code = (
            "import sys, pyarrow.parquet as pq; from pathlib import Path; "
            "files = sorted(Path(sys.argv[1]).glob('part-*.parquet')); "
            "writer = pq.ParquetWriter(sys.argv[2], pq.read_schema(files[0])); "
            "[writer.write_table(pq.read_table(f)) for f in files]; writer.close()"
        )
        subprocess.run([sys.executable, "-c", code, str(work / "parts"), str(work / "input.parquet")], check=True)


def _dask(work: Path, rounds: int, workers: int, memory: str) -> dict[str, Any]:
    script = work / "dask_child.py"
    script.write_text(_DASK_CHILD)
    payload = json.dumps({"work": str(work), "rounds": rounds, "workers": workers, "memory": memory})
    proc = subprocess.run([sys.executable, str(script), payload], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"dask failed:\n{proc.stderr[-3000:]}")
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    result: dict[str, Any] = json.loads(line[len("RESULT ") :])
    return result


def _local(work: Path, rounds: int, **extra: Any) -> dict[str, float]:
    load = _child("load", work, rounds)
    trained = _child("train", work, rounds, families=["xgboost"], **extra)
    return {
        "load_s": load["seconds"],
        "train_s": trained["seconds"],
        "seconds": load["seconds"] + trained["seconds"],
        "peak_mb": max(load["peak_mb"], trained["peak_mb"]),
        "test_auprc": trained["test_auprc"],
    }


def _line(rows: int, engine: str, load_s: float, train_s: float, peak: str, auprc: float) -> str:
    total = load_s + train_s
    return (
        f"{rows:>11,} | {engine:<14} | {load_s:>7.1f} {train_s:>8.1f} {total:>8.1f} | {total / rows * 1e6:>8.2f} | "
        f"{peak:<52} | {auprc:>6.4f}"
    )


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print the table and the ratios against the targets."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[LARGEST_PUBLIC, 30_000_000])
    parser.add_argument("--local-up-to", type=int, default=LARGEST_PUBLIC, help="largest size the local engine runs")
    parser.add_argument("--rounds", type=int, default=300, help="boosting rounds for every side")
    parser.add_argument("--repeats", type=int, default=3, help="runs of the local engine and of the floor")
    parser.add_argument("--workers", type=int, default=2)
    parser.add_argument("--worker-memory", default="4GiB", help="each worker's Dask memory limit")
    parser.add_argument("--negative-sample-rate", type=float, default=0.1, help="for the downsampled local run")
    parser.add_argument("--json", type=Path, help="also write the results as JSON here")
    args = parser.parse_args(argv)

    header = (
        f"{'rows':>11} | {'engine':<14} | {'load s':>7} {'train s':>8} {'total s':>8} | {'s/M rows':>8} | "
        f"{'peak RSS MB (every process)':<52} | {'AUPRC':>6}"
    )
    print_head(
        f"load+train, {args.rounds} rounds, depth 6, hist; Dask: LocalCluster of {args.workers} 1-thread workers",
        header,
    )
    results: list[dict[str, Any]] = []
    for rows in args.sizes:
        local_too = rows <= args.local_up_to
        with tempfile.TemporaryDirectory(prefix="bench-dask-") as tmp:
            work = Path(tmp)
            started = time.perf_counter()
            print(f"  generating {rows:,} rows ...", end="", flush=True, file=sys.stderr)
            _generate(rows, work, local_too)
            print(f" {time.perf_counter() - started:.0f}s; measuring ...", flush=True, file=sys.stderr)
            dask = _dask(work, args.rounds, args.workers, args.worker_memory)
            peaks = dask["processes"]
            worst = max(peaks.values())
            shown = ", ".join(f"{name.split()[0]} {mb:.0f}" for name, mb in peaks.items())
            print(_line(rows, "dask", dask["load_s"], dask["train_s"], shown, dask["test_auprc"]), flush=True)
            row: dict[str, Any] = {"rows": rows, "dask": dask, "dask_max_process_mb": worst}
            row["dask_s_per_million"] = (dask["load_s"] + dask["train_s"]) / rows * 1e6
            if local_too:
                local_runs, floor_runs = [], []
                for _ in range(args.repeats):
                    local_runs.append(_local(work, args.rounds))
                    run = local_runs[-1]
                    peak = f"load+train {run['peak_mb']:.0f}"
                    print(_line(rows, "local", run["load_s"], run["train_s"], peak, run["test_auprc"]), flush=True)
                    floor_runs.append(_child("floor", work, args.rounds))
                    floor = floor_runs[-1]
                    print(
                        _line(rows, "floor", 0.0, floor["seconds"], f"{floor['peak_mb']:.0f}", float("nan")), flush=True
                    )
                sampled = _local(work, args.rounds, negative_sample_rate=args.negative_sample_rate)
                label = f"local r={args.negative_sample_rate:g}"
                peak = f"load+train {sampled['peak_mb']:.0f}"
                print(
                    _line(rows, label, sampled["load_s"], sampled["train_s"], peak, sampled["test_auprc"]), flush=True
                )
                local_s = statistics.median(r["seconds"] for r in local_runs)
                local_mb = statistics.median(r["peak_mb"] for r in local_runs)
                floor_s = statistics.median(r["seconds"] for r in floor_runs)
                floor_mb = statistics.median(r["peak_mb"] for r in floor_runs)
                row.update(
                    local=local_runs,
                    floor=floor_runs,
                    downsampled=sampled,
                    local_time_ratio=local_s / floor_s,
                    local_memory_ratio=local_mb / floor_mb,
                    local_s_per_million=local_s / rows * 1e6,
                )
                row["dask_vs_local_per_million"] = row["dask_s_per_million"] / row["local_s_per_million"]
                print(
                    f"  {rows:,} rows, median of {args.repeats}: local {local_s:.1f}s / floor {floor_s:.1f}s = "
                    f"{row['local_time_ratio']:.2f}x time (target <= 1.3); peak RSS {local_mb:.0f} / {floor_mb:.0f} MB "
                    f"= {row['local_memory_ratio']:.2f}x (target <= 1.5)"
                )
                print(
                    f"  dask {row['dask_s_per_million']:.2f} s/M rows vs local {row['local_s_per_million']:.2f} = "
                    f"{row['dask_vs_local_per_million']:.2f}x (target <= 1.5); AUPRC dask "
                    f"{dask['test_auprc']:.4f}, local {local_runs[0]['test_auprc']:.4f}, "
                    f"local r={args.negative_sample_rate:g} {sampled['test_auprc']:.4f}",
                    flush=True,
                )
            print(f"  {rows:,} rows: largest Dask process {worst:.0f} MB (target < 6144)", flush=True)
            results.append(row)
    reference = next((r for r in results if "local_s_per_million" in r), None)
    if reference:
        for r in results:
            ratio = r["dask_s_per_million"] / reference["local_s_per_million"]
            print(f"  dask at {r['rows']:,} rows: {ratio:.2f}x the local engine's s/M rows at {reference['rows']:,}")
    return save_json(args.json, results)


if __name__ == "__main__":
    sys.exit(main())
