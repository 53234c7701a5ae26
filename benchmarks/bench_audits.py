"""Per-step times and headline figures of the three audits on the default synthetic data (284,807 rows).

The script generates the data (drift off and on), splits it by time (60/15/15/10), trains the champion
once (not part of the audit times) and writes the windows and model to a work directory. Each audit then
runs in a fresh subprocess, as it does in its own pod or ``kfp.local`` process, and reports two times:
``work`` (the audit's own call) and ``process`` (interpreter start + imports + work). The poison sweep runs
its 11 tasks (baseline + 2 kinds x 5 levels, each with the defence) one after the other in one process,
which is what ``kfp.local`` does with a ``ParallelFor``; on a cluster they run in parallel pods.

    .venv/bin/python benchmarks/bench_audits.py                       # prints tables, writes JSON
    .venv/bin/python benchmarks/bench_audits.py --json benchmarks/results/bench_audits.json --out /tmp/audits
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

DEFAULT_LEVELS = (0.01, 0.02, 0.05, 0.10, 0.20)
"""The poisoning levels swept after the clean baseline (the pipeline's defaults, 0 excluded)."""

_CHILD = r"""
import json, sys, time
from pathlib import Path
args = json.loads(sys.argv[1])
work, out = Path(args["work"]), Path(args["out"])
import numpy as np, pandas as pd, xgboost as xgb
from fraud_detection.boosting import TrainParams, features_and_label
meta = json.loads((work / "model.json").read_text())
booster = xgb.Booster(); booster.load_model(str(work / "model.ubj"))
started = time.perf_counter()
if args["step"] == "poison":
    from fraud_detection.audits import poison
    from fraud_detection.reports.poison import markdown, render_poison
    w = {n: features_and_label(pd.read_parquet(work / f"{n}.parquet")) for n in ("train", "validation", "test")}
    params = poison.sweep_params(TrainParams(nthread=args["nthread"]), meta["best_iteration"])
    plan = [("none", 0.0)] + [(kind, level) for kind in poison.ATTACKS for level in args["levels"]]
    results, task_seconds = [], []
    for kind, level in plan:
        t0 = time.perf_counter()
        results.append(poison.run_level(*w["train"], *w["validation"], *w["test"], kind, level, params, seed=7))
        task_seconds.append(time.perf_counter() - t0)
    sweep = poison.summarise(results)
    render_poison(sweep, out / "poison")
    extra = {"markdown": markdown(sweep), "task_seconds": task_seconds, "rounds": params.n_rounds}
elif args["step"] == "fairness":
    from fraud_detection.audits import fairness
    from fraud_detection.reports.fairness import render_fairness
    result = fairness.run_fairness(pd.read_parquet(work / "test.parquet"), booster, meta["threshold"], "age_group")
    render_fairness(result, out / "fairness")
    extra = {"fairness": None if result.fairness is None else result.fairness.to_dict(),
             "shap_top": list(result.shap.importance.items())[:5]}
else:
    from fraud_detection.audits import drift
    from fraud_detection.reports.drift import render_drift
    tag = args["step"]
    result = drift.run_drift(pd.read_parquet(work / f"{tag}_train.parquet"),
                             pd.read_parquet(work / f"{tag}_current.parquet"), booster=booster)
    render_drift(result, out / tag)
    extra = {"drift_share": result.drift_share, "drifted": result.drifted, "drifted_features": result.drifted_features,
             "score_drift": result.score_drift, "score_drifted": result.score_drifted}
print("RESULT " + json.dumps({"work_seconds": time.perf_counter() - started, **extra}))
"""


def _prepare(work: Path, nthread: int) -> dict[str, float]:
    from fraud_detection import data
    from fraud_detection.boosting import TrainParams, features_and_label, predict_proba, train_booster
    from fraud_detection.metrics import evaluate
    from fraud_detection.synth import SyntheticConfig, generate

    for strength in (0.0, 1.0):
        windows = data.time_split(generate(SyntheticConfig(drift=strength)))
        tag = "drift_off" if strength == 0 else "drift_on"
        windows["train"].to_parquet(work / f"{tag}_train.parquet")
        windows["current"].to_parquet(work / f"{tag}_current.parquet")
        if strength == 0:
            for name in ("train", "validation", "test"):
                windows[name].to_parquet(work / f"{name}.parquet")
            x_train, y_train = features_and_label(windows["train"])
            x_valid, y_valid = features_and_label(windows["validation"])
            x_test, y_test = features_and_label(windows["test"])
            started = time.perf_counter()
            model = train_booster(x_train, y_train, x_valid, y_valid, TrainParams(nthread=nthread), log_every=0)
            train_seconds = time.perf_counter() - started
            model.booster.save_model(str(work / "model.ubj"))
            test = evaluate(y_test, predict_proba(model.booster, x_test), model.threshold)
            (work / "model.json").write_text(
                json.dumps({"threshold": model.threshold, "best_iteration": model.best_iteration})
            )
    return {"train_seconds": train_seconds, "test_auprc": test["auprc"], "best_iteration": model.best_iteration}


def _run_step(step: str, work: Path, out: Path, nthread: int, levels: list[float]) -> dict:
    started = time.perf_counter()
    proc = subprocess.run(
        [
            sys.executable,
            "-c",
            _CHILD,
            json.dumps({"step": step, "work": str(work), "out": str(out), "nthread": nthread, "levels": levels}),
        ],
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "PYTHONPATH": str(Path(__file__).resolve().parents[1])},
    )
    process_seconds = time.perf_counter() - started
    lines = [line for line in proc.stdout.splitlines() if line.startswith("RESULT ")]
    if proc.returncode != 0 or not lines:
        raise RuntimeError(f"step {step} failed ({proc.returncode}):\n{proc.stderr[-3000:]}")
    return {"process_seconds": process_seconds, **json.loads(lines[-1][len("RESULT ") :])}


def _num(value: float | None, digits: int) -> str:
    """A number to ``digits`` places; "n/a" for a gap that could not be measured (None in the JSON)."""
    return "n/a" if value is None else f"{value:.{digits}f}"


def main() -> None:
    """Run the benchmark and print its tables."""
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--json", type=Path, help="write all figures to this JSON file")
    parser.add_argument("--out", type=Path, help="keep the reports here (default: a temporary directory)")
    parser.add_argument("--nthread", type=int, default=1, help="XGBoost threads per task (0 = all cores)")
    parser.add_argument(
        "--levels",
        type=lambda text: [float(v) for v in text.split(",")],
        default=list(DEFAULT_LEVELS),
        help="poison levels > 0, comma-separated (default: %(default)s)",
    )
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(prefix="bench-audits-") as tmp:
        work = Path(tmp)
        out = args.out or work / "reports"
        champion = _prepare(work, args.nthread)
        print(
            f"champion: trained in {champion['train_seconds']:.1f}s, best round {champion['best_iteration'] + 1}, "
            f"test AUPRC {champion['test_auprc']:.4f}"
        )
        steps = {
            name: _run_step(name, work, out, args.nthread, args.levels)
            for name in ("poison", "fairness", "drift_off", "drift_on")
        }
    print("\n| step | work (s) | process incl. imports (s) |\n| --- | --- | --- |")
    for name, result in steps.items():
        print(f"| {name} | {result['work_seconds']:.1f} | {result['process_seconds']:.1f} |")
    print("\nPoison sweep (test AUPRC / recall; defended = trusted-sanitiser defence):\n")
    print(steps["poison"]["markdown"])
    fair = steps["fairness"]["fairness"]
    print(
        "\nFairness by age_group:",
        json.dumps(
            {g: {k: None if v is None else round(v, 4) for k, v in m.items()} for g, m in fair["by_group"].items()}
        ),
    )
    print(
        f"demographic parity difference {_num(fair['demographic_parity_difference'], 5)}, equalised odds difference "
        f"{_num(fair['equalized_odds_difference'], 4)}, recall gap {_num(fair['recall_gap'], 4)}, "
        f"FPR gap {_num(fair['fpr_gap'], 6)}"
    )
    print("SHAP top features:", steps["fairness"]["shap_top"])
    for tag in ("drift_off", "drift_on"):
        d = steps[tag]
        print(
            f"{tag}: drift_share {d['drift_share']:.3f}, drifted {d['drifted']}, features {d['drifted_features']}, "
            f"score drift {d['score_drift']:.3f} (drifted {d['score_drifted']})"
        )
    if args.json:
        args.json.parent.mkdir(parents=True, exist_ok=True)
        args.json.write_text(
            json.dumps(
                {"champion": champion, "steps": steps, "cpu_count": os.cpu_count(), "load_average": os.getloadavg()},
                indent=2,
            )
            + "\n"
        )


if __name__ == "__main__":
    main()
