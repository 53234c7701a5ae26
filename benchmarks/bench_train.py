"""Load+train speed and peak memory against bare XGBoost, at several data sizes.

For each size the script generates the synthetic data set once (not timed) and writes it as Parquet, then
measures, each in a fresh subprocess that reports its own work time and peak RSS:

* ``ours``  = the pipeline's load step (read, validate, version, split, write windows) followed by its
  train step for the XGBoost family alone (``families=["xgboost"]``; the bake-off's network is not timed):
  read windows, XGBoost with validation-AUPRC monitoring, threshold, metrics, logistic baseline, MLflow
  logging to SQLite. The two run in separate processes, as they run in separate pods;
  time is their sum and peak RSS the larger of the two.
* ``floor`` = bare ``xgboost.train`` (hist, same knobs) on the very same training arrays for the same number
  of rounds, with no evaluation set; loading the arrays is not timed.

Rounds are fixed (early stopping disabled) so both sides do identical boosting work. Run:

    .venv/bin/python benchmarks/bench_train.py                # 100k, 1M, 6,362,620 rows (about 5 minutes)
    .venv/bin/python benchmarks/bench_train.py --sizes 100000 --rounds 50
"""

from __future__ import annotations

import argparse
import json
import subprocess
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

LARGEST_PUBLIC = 6_362_620

_CHILD = r"""
import json, resource, sys, time
from pathlib import Path
args = json.loads(sys.argv[1])
work = Path(args["work"])
if args["phase"] == "load":
    from fraud_detection import data
    from fraud_detection.config import DataKnobs
    from fraud_detection.steps.load import load_step
    started = time.perf_counter()
    load_step(DataKnobs(data_uri=str(work / "input.parquet")), {name: work / f"{name}.parquet" for name in data.SPLITS})
    elapsed = time.perf_counter() - started
    extra = {}
elif args["phase"] == "train":
    from fraud_detection import boosting
    from fraud_detection.steps.bakeoff import train_step
    started = time.perf_counter()
    result = train_step(work / "train.parquet", work / "validation.parquet", work / "test.parquet",
                              boosting.TrainParams(n_rounds=args["rounds"], early_stopping_rounds=args["rounds"],
                                                **({"families": args["families"]} if "families" in args else {})),
                              work / "model", f"sqlite:///{work}/mlflow.db", "bench", "bench",
                              negative_sample_rate=args.get("negative_sample_rate", 1.0))
    elapsed = time.perf_counter() - started
    extra = {"test_auprc": result.metrics["test_auprc"], "rounds": int(result.metrics["best_iteration"]) + 1}
else:
    import numpy as np, xgboost as xgb
    from fraud_detection import boosting, data
    x, y = data.read_xy(work / "train.parquet")
    params = boosting.TrainParams()
    weight = (float((y == 0).sum()) / float(y.sum())) ** 0.5
    started = time.perf_counter()
    dtrain = xgb.QuantileDMatrix(x, label=y)
    xgb.train({"objective": "binary:logistic", "tree_method": "hist", "max_depth": params.max_depth,
               "eta": params.learning_rate, "subsample": params.subsample,
               "colsample_bytree": params.colsample_bytree, "scale_pos_weight": weight, "seed": params.seed},
              dtrain, num_boost_round=args["rounds"])
    elapsed = time.perf_counter() - started
    extra = {}
peak_mb = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
print("RESULT " + json.dumps({"seconds": elapsed, "peak_mb": peak_mb, **extra}))
"""


def _child(phase: str, work: Path, rounds: int, **extra: Any) -> dict[str, float]:
    payload = json.dumps({"phase": phase, "work": str(work), "rounds": rounds, **extra})
    proc = subprocess.run([sys.executable, "-c", _CHILD, payload], capture_output=True, text=True, check=False)
    if proc.returncode != 0:
        raise RuntimeError(f"{phase} failed:\n{proc.stderr[-3000:]}")
    line = next(line for line in proc.stdout.splitlines() if line.startswith("RESULT "))
    result: dict[str, float] = json.loads(line[len("RESULT ") :])
    return result


def _prepare(rows: int, work: Path) -> None:
    """Generate the input in a subprocess: a child forked from a parent that held the data would inherit the
    parent's peak RSS in its own ``ru_maxrss`` (Linux keeps the high-water mark across fork)."""
    code = (
        "import sys; from pathlib import Path; from fraud_detection import data, synth; "
        "data.write_parquet(synth.generate(synth.SyntheticConfig(n_rows=int(sys.argv[1]), seed=11)), "
        "Path(sys.argv[2]) / 'input.parquet')"
    )
    subprocess.run([sys.executable, "-c", code, str(rows), str(work)], check=True)


def print_head(title: str, header: str) -> None:
    """Print a benchmark table's title, its column header and a rule under it."""
    print(title)
    print(header)
    print("-" * len(header))


def save_json(path: Path | None, rows: Any) -> int:
    """Write the benchmark's rows as JSON to ``path`` (when given); the exit status (0)."""
    if path:
        path.write_text(json.dumps(rows, indent=2))
    return 0


def main(argv: list[str] | None = None) -> int:
    """Run the benchmark and print a table."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--sizes", type=int, nargs="+", default=[100_000, 1_000_000, LARGEST_PUBLIC])
    parser.add_argument("--rounds", type=int, default=300, help="boosting rounds for both sides")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    rows_out = []
    header = (
        f"{'rows':>10} | {'load s':>7} {'train s':>8} {'ours s':>7} {'floor s':>8} {'time x':>7} | "
        f"{'ours MB':>8} {'floor MB':>9} {'mem x':>6} | {'s/M rows':>8} | {'AUPRC':>6}"
    )
    print_head(
        f"load+train vs bare xgboost.train, {args.rounds} rounds, depth 6, hist; each phase in its own process", header
    )
    for rows in args.sizes:
        with tempfile.TemporaryDirectory(prefix="bench-train-") as tmp:
            work = Path(tmp)
            started = time.perf_counter()
            print(f"  generating {rows:,} rows ...", end="", flush=True, file=sys.stderr)
            _prepare(rows, work)
            print(f" {time.perf_counter() - started:.0f}s; measuring ...", flush=True, file=sys.stderr)
            load = _child("load", work, args.rounds)
            floor = _child("floor", work, args.rounds)
            trained = _child("train", work, args.rounds, families=["xgboost"])
        ours_s = load["seconds"] + trained["seconds"]
        ours_mb = max(load["peak_mb"], trained["peak_mb"])
        row = {
            "rows": rows,
            "load_s": load["seconds"],
            "train_s": trained["seconds"],
            "ours_s": ours_s,
            "floor_s": floor["seconds"],
            "time_ratio": ours_s / floor["seconds"],
            "ours_peak_mb": ours_mb,
            "load_peak_mb": load["peak_mb"],
            "train_peak_mb": trained["peak_mb"],
            "floor_peak_mb": floor["peak_mb"],
            "memory_ratio": ours_mb / floor["peak_mb"],
            "seconds_per_million_rows": ours_s / rows * 1e6,
            "test_auprc": trained["test_auprc"],
        }
        rows_out.append(row)
        print(
            f"{rows:>10,} | {load['seconds']:>7.1f} {trained['seconds']:>8.1f} {ours_s:>7.1f} {floor['seconds']:>8.1f} "
            f"{row['time_ratio']:>6.2f}x | {ours_mb:>8.0f} {floor['peak_mb']:>9.0f} {row['memory_ratio']:>5.2f}x | "
            f"{row['seconds_per_million_rows']:>8.1f} | {trained['test_auprc']:>6.3f}",
            flush=True,
        )
    print(
        "targets at 6,362,620 rows: time x <= 1.3, mem x <= 1.5 (bench_dask.py takes the median of three); "
        "s/M rows should not grow with size"
    )
    return save_json(args.json, rows_out)


if __name__ == "__main__":
    sys.exit(main())
