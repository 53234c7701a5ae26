"""The train-family step's tuning: search the family's space on validation, then fit it as the bake-off does
(:func:`fraud_detection.steps.bakeoff.train_family_step`, which comes here when the knobs ask) with the best values.

The trials are written beside the model (:data:`TRIALS_FILE`); the select step logs them as nested MLflow runs
under the family's candidate run, and the report draws them.
"""

from __future__ import annotations

import logging
from pathlib import Path

from fraud_detection import modeldir
from fraud_detection.boosting import TrainParams
from fraud_detection.families.fit import FitData, fit_family
from fraud_detection.metrics import TUNED_PREFIX, Detail
from fraud_detection.steps.bakeoff import write_family
from fraud_detection.tuning.study import PRUNED, tune, write_trials

log = logging.getLogger(__name__)


def tune_family(
    family: str, windows: FitData, params: TrainParams, model_dir: Path, data_version: str
) -> dict[str, float]:
    """Tune ``family`` within ``params.tune_trials``/``tune_seconds`` on ``windows``' validation window, then fit it
    on the same windows with the best values and write its model directory with the trials beside it
    (:func:`fraud_detection.steps.bakeoff.train_family_step` comes here when the knobs ask for tuning).

    Returns the family's validation metrics and details, with ``tune_trials``, ``tune_pruned``, ``tune_seconds``
    and the best values as ``tuned_<name>``.
    """
    result = tune(family, windows, params, params.tune_trials or None, params.tune_seconds)
    best = result.params
    fitted = fit_family(
        family, windows.x_train, windows.y_train, windows.x_valid, windows.y_valid, best, windows.sample_weight
    )
    metrics = write_family(fitted, windows.y_valid, best, model_dir, data_version)
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
