"""The local tuner: Optuna's TPE sampler over a family's search space, hopeless trials pruned by the median rule.

Every trial fits the family on the training window and is scored by its validation AUPRC (the test window is
never read). The first trial is the fixed settings, so the best trial is never below them on validation. Trials
run ``jobs`` at a time in threads (XGBoost and NumPy release the GIL), each XGBoost trial with
``cores // jobs`` threads.
"""

from __future__ import annotations

import json
import logging
import os
import threading
import time
from dataclasses import asdict, dataclass, field
from pathlib import Path
from typing import Any

from fraud_detection import tracking
from fraud_detection.boosting import TrainParams
from fraud_detection.families import MLP, XGBOOST
from fraud_detection.families.fit import mlp, xgboost
from fraud_detection.families.fit.base import FitData
from fraud_detection.tuning.space import Tunable, Value

log = logging.getLogger(__name__)

TUNABLE: dict[str, Tunable] = {XGBOOST: xgboost.TUNING, MLP: mlp.TUNING}
"""Each family the tuner knows, with its search space (declared beside its fitter)."""

COMPLETE, PRUNED, FAILED = "complete", "pruned", "failed"

TRIALS_FILE = "tuning_trials.json"
"""In a tuned family's model directory: every trial (number, values, validation AUPRC, state, seconds)."""


@dataclass(frozen=True)
class TrialRecord:
    """One trial: its values, validation AUPRC (the last reported one when pruned) and how it ended."""

    number: int
    values: dict[str, Value]
    auprc: float
    state: str
    seconds: float
    steps: int
    """Rounds or epochs reported before it ended."""


@dataclass
class TuningResult:
    """The best trial's values and train parameters, and every trial."""

    family: str
    best_values: dict[str, Value]
    best_auprc: float
    params: TrainParams
    """The fixed settings with the best trial's values applied: what the family is then trained with."""
    trials: list[TrialRecord] = field(default_factory=list)
    seconds: float = 0.0


def tuning_requested(params: TrainParams) -> bool:
    """Whether the knobs ask for tuning (``tune_trials`` or ``tune_seconds`` above 0)."""
    return params.tune_trials > 0 or params.tune_seconds > 0


def default_jobs(trials: int) -> int:
    """Trials run at once: one per core this process may use, at most the number of trials."""
    cores = len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else os.cpu_count() or 1
    return max(1, min(cores, trials))


def tune(
    family: str,
    data: FitData,
    params: TrainParams,
    trials: int | None,
    seconds: float = 0.0,
    jobs: int | None = None,
) -> TuningResult:
    """Search ``family``'s space for the best validation AUPRC in ``trials`` trials and/or ``seconds`` (None or
    0: no limit of that kind; at least one of them is set).

    Args:
        params: the fixed settings (the first trial) and the seed of the sampler.
        jobs: trials at once (default ``params.tune_jobs``, else :func:`default_jobs`); 1 makes the search repeat
            exactly for a seed.

    Raises:
        ValueError: for a family without a search space, or no trials.
    """
    import optuna
    from sklearn.metrics import average_precision_score

    if family not in TUNABLE:
        raise ValueError(f"no search space for family {family!r}: expected one of {sorted(TUNABLE)}")
    if (trials is None or trials < 1) and seconds <= 0:
        raise ValueError(f"tuning needs a budget: trials {trials}, seconds {seconds}")
    tunable = TUNABLE[family]
    jobs = jobs or params.tune_jobs or default_jobs(trials or 1 << 16)
    cores = default_jobs(1 << 16)
    trial_params = params.model_copy(update={"nthread": max(1, cores // jobs)})
    optuna.logging.set_verbosity(optuna.logging.WARNING)
    sampler = optuna.samplers.TPESampler(
        seed=params.seed, n_startup_trials=min(10, max(3, (trials or 30) // 3)), constant_liar=jobs > 1
    )
    pruner = optuna.pruners.MedianPruner(n_startup_trials=3, n_warmup_steps=tunable.warmup_steps)
    study = optuna.create_study(direction="maximize", sampler=sampler, pruner=pruner)
    study.enqueue_trial(dict(tunable.current(params)))
    records: list[TrialRecord] = []
    lock = threading.Lock()
    started = time.perf_counter()

    def objective(trial: optuna.Trial) -> float:
        values = tunable.space.suggest(trial)
        began, last = time.perf_counter(), [0, float("nan")]

        def report(step: int, auprc: float) -> None:
            last[:] = [step, auprc]
            trial.report(auprc, step)
            if trial.should_prune():
                raise optuna.TrialPruned

        state, auprc = FAILED, float("nan")
        try:
            fitted = tunable.fit_with(data, tunable.apply(trial_params, values), report)
            auprc, state = float(average_precision_score(data.y_valid, fitted.validation_scores)), COMPLETE
            return auprc
        except optuna.TrialPruned:
            state, auprc = PRUNED, float(last[1])
            raise
        finally:
            record = TrialRecord(trial.number, values, auprc, state, time.perf_counter() - began, int(last[0]))
            with lock:
                records.append(record)
            log.info("%s trial %d: %s, validation AUPRC %.4f (%s)", family, trial.number, state, auprc, values)

    study.optimize(objective, n_trials=trials, timeout=seconds or None, n_jobs=jobs, catch=(ValueError,))
    best = study.best_trial
    best_values = {k: v for k, v in best.params.items()}
    result = TuningResult(
        family=family,
        best_values=best_values,
        best_auprc=float(best.value or 0.0),
        params=tunable.apply(params, best_values),
        trials=sorted(records, key=lambda r: r.number),
        seconds=time.perf_counter() - started,
    )
    log.info(
        "%s tuning: %d trials (%d pruned) in %.1fs; best %d, validation AUPRC %.4f: %s",
        family,
        len(records),
        sum(r.state == PRUNED for r in records),
        result.seconds,
        best.number,
        result.best_auprc,
        best_values,
    )
    return result


def write_trials(trials: list[TrialRecord], model_dir: Path) -> Path:
    """Every trial as JSON in the model directory (:data:`TRIALS_FILE`)."""
    path = Path(model_dir) / TRIALS_FILE
    path.write_text(json.dumps([asdict(t) for t in trials], indent=1) + "\n")
    return path


def read_trials(model_dir: Path) -> list[TrialRecord]:
    """The trials a tuned family's model directory holds; none for an untuned one."""
    path = Path(model_dir) / TRIALS_FILE
    if not path.is_file():
        return []
    rows: list[dict[str, Any]] = json.loads(path.read_text())
    return [TrialRecord(**row) for row in rows]


def trial_runs(family: str, trials: list[TrialRecord]) -> list[tracking.RunRecord]:
    """Each trial as a nested MLflow run (logged under the family's candidate run by the select step)."""
    return [
        tracking.RunRecord(
            name=f"trial-{family}-{t.number}",
            tags={"step": "trial", "family": family, "state": t.state},
            params=dict(t.values),
            metrics={"validation_auprc": t.auprc, "trial_seconds": t.seconds, "steps": t.steps},
        )
        for t in trials
    ]
