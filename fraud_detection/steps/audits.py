"""The audit steps: poison sweep (per level, then collected), drift and fairness."""

from __future__ import annotations

import logging
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

from fraud_detection import data, modeldir, train

log = logging.getLogger(__name__)


def _candidate_params(model_dir: Path) -> tuple[train.TrainParams, int | None]:
    """The candidate's hyper-parameters and best round, from its model directory's metadata."""
    meta = modeldir.read_metadata(model_dir)
    known = set(train.TrainParams.__dataclass_fields__)
    params = train.TrainParams(**{k: v for k, v in meta.params.items() if k in known})  # type: ignore[arg-type]
    best = meta.metrics.get("best_iteration")
    return params, int(best) if best is not None else None


def poison_level_step(
    train_path: Path,
    validation_path: Path,
    test_path: Path,
    model_dir: Path,
    level: float,
    kinds: list[str],
    seed: int,
) -> list[dict[str, Any]]:
    """Every attack kind at one poisoning level (the clean baseline at level 0), with the candidate's knobs."""
    from fraud_detection import poison

    champion_params, best = _candidate_params(model_dir)
    # One thread per level task: levels run side by side (pods on a cluster, two at a time under kfp.local),
    # and XGBoost threads competing for the same cores cost far more than they give.
    params = replace(poison.sweep_params(champion_params, best), nthread=1)
    x_train, y_train = data.read_xy(train_path)
    x_valid, y_valid = data.read_xy(validation_path)
    x_test, y_test = data.read_xy(test_path)
    kinds_here = [poison.NONE] if level == 0 else list(kinds)
    results = []
    for kind in kinds_here:
        started = time.perf_counter()
        results.append(poison.run_level(x_train, y_train, x_valid, y_valid, x_test, y_test, kind, level, params, seed))
        log.info("poison %s at %.0f%%: %.1fs", kind, 100 * level, time.perf_counter() - started)
    return results


def robust_auprc(table: list[dict[str, Any]], level: float) -> float | None:
    """The worst attacked AUPRC at ``level`` across attack kinds (None when the sweep did not include it)."""
    at_level = [float(r["auprc"]) for r in table if abs(float(r["level_pct"]) - 100 * level) < 1e-9 and level > 0]
    return min(at_level) if at_level else None


def poison_collect_step(
    results: list[dict[str, Any]],
    out_dir: Path,
    robustness_level: float,
    tracking_uri: str,
    experiment: str,
    data_version: str,
) -> dict[str, Any]:
    """Build the sweep report, log it to MLflow (a parent run, a child per level), find the gate's AUPRC."""
    from fraud_detection import poison

    summary = poison.collect(results, out_dir)
    summary["mlflow_run_id"] = poison.log_to_mlflow(
        summary, results, tracking_uri, experiment, parent_tags={"data_version": data_version}
    )
    summary["robust_auprc"] = robust_auprc(summary["table"], robustness_level)
    return summary


def drift_step(
    reference_path: Path,
    current_path: Path,
    drift_data_uri: str,
    sensitive_column: str,
    model_dir: Path,
    out_dir: Path,
    tracking_uri: str,
    experiment: str,
) -> dict[str, Any]:
    """Evidently drift between the training window and the current window (or ``drift_data_uri``)."""
    from fraud_detection import drift

    reference = data.read_window(reference_path)
    if drift_data_uri:
        current = data.load_dataset(drift_data_uri, sensitive_column).frame
    else:
        current = data.read_window(current_path)
    booster, _ = modeldir.load_model_dir(model_dir)
    summary = drift.run_drift(reference, current, out_dir, booster=booster)
    summary["mlflow_run_id"] = drift.log_to_mlflow(summary, tracking_uri, experiment)
    return summary


def fairness_step(
    test_path: Path,
    model_dir: Path,
    sensitive_column: str,
    out_dir: Path,
    tracking_uri: str,
    experiment: str,
) -> dict[str, Any]:
    """Fairlearn group metrics and SHAP explanations of the candidate on the test window, logged to MLflow."""
    from fraud_detection import fairness

    booster, meta = modeldir.load_model_dir(model_dir)
    test = data.read_window(test_path)
    summary = fairness.run_fairness(test, booster, meta.threshold, sensitive_column, out_dir)
    summary["mlflow_run_id"] = fairness.log_to_mlflow(summary, tracking_uri, experiment)
    return summary
