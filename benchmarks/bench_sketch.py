"""The sampled quantile sketch beside XGBoost's sketch of every row: matrix build time and model quality.

Above twice ``boosting.SKETCH_MAX_ROWS`` training rows, the local engine places the histogram's bin edges from a
weighted sample of that many rows (every fraud row), then bins every row with them (``boosting.training_matrix``).
This script measures what that costs in quality. It generates the data set once, splits it with the load
step, and then, for each training seed, trains the same early-stopped XGBoost twice on the same windows: once
with edges from every row (``sketch_max_rows`` = the window's size, which is ``xgb.QuantileDMatrix`` as is)
and once with the default. It prints, per model, the matrix build time, the best round, and AUPRC on the whole
validation and test windows. The seed moves AUPRC too; compare the two sketches with that spread.
Run (about 6 minutes at the default size; fewer than about 1.35M rows leave too few training rows to sample):

    .venv/bin/python benchmarks/bench_sketch.py
    .venv/bin/python benchmarks/bench_sketch.py --rows 2000000 --seeds 42
"""

from __future__ import annotations

import argparse
import statistics
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

import numpy as np
from bench_train import LARGEST_PUBLIC, _prepare, print_head, save_json


def _measure(windows: dict[str, tuple[np.ndarray, np.ndarray]], seed: int, every_row: bool) -> dict[str, Any]:
    """Train once on the windows (features and labels by split) with one sketch; return its figures."""
    from fraud_detection import boosting, metrics

    (x_train, y_train), (x_valid, y_valid), (x_test, y_test) = (windows[n] for n in ("train", "validation", "test"))
    sketch_rows = y_train.size if every_row else boosting.SKETCH_MAX_ROWS
    started = time.perf_counter()
    matrix = boosting.training_matrix(x_train, y_train, None, seed, sketch_rows)
    build_s = time.perf_counter() - started
    del matrix
    params = boosting.TrainParams(seed=seed, families=["xgboost"])
    trained = boosting.train_booster(
        x_train, y_train, x_valid, y_valid, params, log_every=0, sketch_max_rows=sketch_rows
    )
    test = metrics.evaluate(y_test, boosting.predict_proba(trained.booster, x_test), trained.threshold)
    return {
        "seed": seed,
        "sketch_rows": boosting.sketched_rows(y_train.size, sketch_rows),
        "build_s": build_s,
        "best_round": trained.best_iteration + 1,
        "validation_auprc": metrics.evaluate(y_valid, trained.validation_scores, trained.threshold)["auprc"],
        "test_auprc": test["auprc"],
    }


def main(argv: list[str] | None = None) -> int:
    """Run the comparison and print a table and the mean differences."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=LARGEST_PUBLIC)
    parser.add_argument("--seeds", type=int, nargs="+", default=[42, 1, 2], help="training seeds")
    parser.add_argument("--json", type=Path, help="also write the rows as JSON here")
    args = parser.parse_args(argv)

    from fraud_detection import boosting, data
    from fraud_detection.config import DataKnobs
    from fraud_detection.steps.load import load_step

    results = []
    with tempfile.TemporaryDirectory(prefix="bench-sketch-") as tmp:
        work = Path(tmp)
        print(f"  generating {args.rows:,} rows and splitting them ...", flush=True, file=sys.stderr)
        _prepare(args.rows, work)
        load_step(DataKnobs(data_uri=str(work / "input.parquet")), {n: work / f"{n}.parquet" for n in data.SPLITS})
        windows = {n: data.read_xy(work / f"{n}.parquet") for n in ("train", "validation", "test")}
        n_train = windows["train"][1].size
        if boosting.sketched_rows(n_train) == n_train:
            raise SystemExit(f"{n_train:,} training rows: too few for a sampled sketch; use more --rows")
        header = (
            f"{'seed':>5} | {'sketched rows':>13} | {'matrix s':>8} | {'best round':>10} | "
            f"{'valid AUPRC':>11} | {'test AUPRC':>10}"
        )
        print_head(
            f"early-stopped XGBoost on {args.rows:,} rows: bin edges from every training row vs a sample", header
        )
        for seed in args.seeds:
            for every_row in (True, False):
                row = _measure(windows, seed, every_row)
                results.append(row)
                print(
                    f"{seed:>5} | {row['sketch_rows']:>13,} | {row['build_s']:>8.1f} | {row['best_round']:>10} | "
                    f"{row['validation_auprc']:>11.4f} | {row['test_auprc']:>10.4f}",
                    flush=True,
                )
    full = results[0::2]
    sampled = results[1::2]
    for key in ("build_s", "validation_auprc", "test_auprc"):
        differences = [s[key] - f[key] for s, f in zip(sampled, full, strict=True)]
        print(f"  sample - every row, {key}: mean {statistics.mean(differences):+.4f} over {len(differences)} seeds")
    spread = max(r["test_auprc"] for r in full) - min(r["test_auprc"] for r in full)
    print(f"  test AUPRC spread across seeds with every row sketched: {spread:.4f}")
    return save_json(args.json, results)


if __name__ == "__main__":
    sys.exit(main())
