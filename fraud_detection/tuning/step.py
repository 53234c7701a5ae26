"""The train-family step with tuning: search the family's space on validation, then train it as the bake-off
does (:func:`fraud_detection.steps.bakeoff.train_family_step`) with the best trial's values.

The trials are written beside the model (:data:`TRIALS_FILE`); the select step logs them as nested MLflow runs
under the family's candidate run, and the report draws them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fraud_detection import modeldir
from fraud_detection.boosting import TrainParams
from fraud_detection.metrics import TUNED_PREFIX, Detail
from fraud_detection.steps.bakeoff import read_windows, train_family_step
from fraud_detection.tuning.study import PRUNED, tune, write_trials

log = logging.getLogger(__name__)


def tuning_requested(params: TrainParams) -> bool:
    """Whether the knobs ask for tuning (``tune_trials`` or ``tune_seconds`` above 0)."""
    return params.tune_trials > 0 or params.tune_seconds > 0


def tune_family_step(
    family: str,
    train_path: Path,
    validation_path: Path,
    params: TrainParams,
    model_dir: Path,
    data_version: str,
    negative_sample_rate: float = 1.0,
    max_train_rows: int | None = None,
) -> dict[str, float]:
    """Tune ``family`` within ``params.tune_trials``/``tune_seconds`` on the validation window, then train it with
    the best values and write its model directory; without a budget, exactly :func:`train_family_step`.

    Returns the family's validation metrics and details, with ``tune_trials``, ``tune_pruned``, ``tune_seconds``
    and the best values as ``tuned_<name>``.
    """
    if not tuning_requested(params):
        return train_family_step(
            family, train_path, validation_path, params, model_dir, data_version, negative_sample_rate, max_train_rows
        )
    windows = read_windows(train_path, validation_path, params.seed, negative_sample_rate, max_train_rows)
    result = tune(family, windows, params, params.tune_trials or None, params.tune_seconds)
    del windows
    best = result.params
    metrics = train_family_step(
        family, train_path, validation_path, best, model_dir, data_version, negative_sample_rate, max_train_rows
    )
    tuned = {
        Detail.TUNE_TRIALS.value: float(len(result.trials)),
        Detail.TUNE_PRUNED.value: float(sum(t.state == PRUNED for t in result.trials)),
        Detail.TUNE_SECONDS.value: result.seconds,
        **{f"{TUNED_PREFIX}{k}": float(v) for k, v in result.best_values.items() if isinstance(v, int | float)},
    }
    meta = modeldir.read_metadata(model_dir)
    meta = meta.model_copy(update={"metrics": {**meta.metrics, **tuned}, "tuned_params": dict(result.best_values)})
    (Path(model_dir) / modeldir.METADATA_FILE).write_text(meta.model_dump_json(indent=2) + "\n")
    write_trials(result.trials, model_dir)
    return {**metrics, **tuned}
