"""What tuning buys and costs: trials per minute here, and the bake-off's test AUPRC against the trial budget
(``tune_trials`` per family) on the synthetic data's rotated setting.

The script generates the data, splits it by time (60/15/15/10) and runs the bake-off in one process
(:func:`fraud_detection.steps.bakeoff.train_step`: both families tuned on validation, the best values trained,
their blend fitted, the winner chosen on validation) once per budget. The test window only reports.

    .venv/bin/python benchmarks/bench_tuning.py                                  # 284,807 rows, 0/10/30/100
    .venv/bin/python benchmarks/bench_tuning.py --rows 60000 --budgets 0 10 30   # the reduced run in docs/tuning.md
"""

from __future__ import annotations

import argparse
import tempfile
import time
from pathlib import Path

from fraud_detection import data, synth
from fraud_detection.boosting import TrainParams
from fraud_detection.steps.bakeoff import train_step


def main() -> None:
    """Print one table row per budget."""
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--rows", type=int, default=synth.PUBLIC_DATASET_ROWS)
    parser.add_argument("--setting", default="rotated", choices=synth.SYNTHETIC_SETTINGS)
    parser.add_argument("--budgets", type=int, nargs="+", default=[0, 10, 30, 100])
    parser.add_argument("--seed", type=int, default=42)
    parser.add_argument("--jobs", type=int, default=0, help="trials at once (0 = one per core)")
    args = parser.parse_args()
    folder = Path(tempfile.mkdtemp(prefix="bench-tuning-"))
    config = synth.SyntheticConfig(n_rows=args.rows, setting=args.setting, seed=args.seed)
    paths = {}
    for name, window in data.time_split(synth.generate(config)).items():
        paths[name] = folder / f"{name}.parquet"
        data.write_parquet(window, paths[name])
    print(f"{args.setting} setting, {args.rows:,} rows, seed {args.seed}; trials per family")
    header = ("trials", "winner", "test AUPRC", "vs 0", "xgboost", "mlp", "seconds", "trials/min")
    print("{:>6} {:>8} {:>10} {:>7} {:>8} {:>8} {:>8} {:>10}".format(*header))
    base = None
    for budget in args.budgets:
        started = time.perf_counter()
        result = train_step(
            paths["train"],
            paths["validation"],
            paths["test"],
            TrainParams(tune_trials=budget, seed=args.seed, tune_jobs=args.jobs),
            folder / f"model-{budget}",
            f"sqlite:///{folder / 'mlflow.db'}",
            "bench-tuning",
            f"bench-{budget}",
            oracle_label_noise=config.label_noise,
            synthetic_setting=args.setting,
        )
        seconds = time.perf_counter() - started
        m = result.metrics
        base = m["test_auprc"] if base is None else base
        ran = sum(m.get(f"{f}_tune_trials", 0) for f in ("xgboost", "mlp"))
        tuned = sum(m.get(f"{f}_tune_seconds", 0) for f in ("xgboost", "mlp"))
        rate = f"{60 * ran / tuned:.1f}" if tuned else "-"
        print(
            f"{budget:>6} {result.winner:>8} {m['test_auprc']:>10.4f} {m['test_auprc'] / base - 1:>+7.1%} "
            f"{m['xgboost_test_auprc']:>8.4f} {m['mlp_test_auprc']:>8.4f} {seconds:>8.0f} {rate:>10}",
            flush=True,
        )
    print(f"best achievable test AUPRC (the generator's true probabilities): {m.get('oracle_test_auprc', 0):.4f}")


if __name__ == "__main__":
    main()
