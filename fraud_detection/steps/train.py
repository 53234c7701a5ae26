"""The train step: fit the candidate, score it, log it to MLflow and write its model directory."""

from __future__ import annotations

import logging
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from fraud_detection import data, modeldir, sampling, tracking, train
from fraud_detection.synth import true_probability

log = logging.getLogger(__name__)


BASELINE_MAX_ROWS = 250_000
"""The logistic baseline trains on every fraud row plus legitimate rows up to this total (rank metrics
such as AUPRC are unaffected by the sampling; it keeps the baseline to seconds at any data size)."""


@dataclass
class TrainStepResult:
    """What the train step measured and where it left the candidate."""

    metrics: dict[str, float]
    threshold: float
    mlflow_run_id: str
    roc: tuple[list[float], list[float], list[float]]
    confusion: list[list[int]]


def train_step(
    train_path: Path,
    validation_path: Path,
    test_path: Path,
    params: train.TrainParams,
    model_dir: Path,
    tracking_uri: str,
    experiment: str,
    data_version: str,
    oracle_label_noise: float | None = None,
    negative_sample_rate: float = 1.0,
) -> TrainStepResult:
    """Train the candidate, score it on the test window, log it to MLflow and write its model directory.

    Args:
        oracle_label_noise: set (to the generator's label noise) when the data is synthetic: the test set's
            best achievable AUPRC is then computed from the true probabilities and reported beside ours.
        negative_sample_rate: below 1, train on every fraud and this share of legitimate rows, weighted
            by its inverse (:mod:`fraud_detection.sampling`).

    Returns:
        Metrics prefixed ``validation_`` and ``test_`` plus ``baseline_lr_test_auprc`` and, for synthetic data,
        ``oracle_test_auprc`` and ``auprc_vs_oracle``.
    """
    started = time.perf_counter()
    x_train, y_train = data.read_xy(train_path)
    x_valid, y_valid = data.read_xy(validation_path)
    weights = None
    if negative_sample_rate < 1.0:
        kept, weights = sampling.downsample(y_train, negative_sample_rate, params.seed)
        x_train, y_train = x_train[kept], y_train[kept]
    result = train.train_booster(x_train, y_train, x_valid, y_valid, params, sample_weight=weights)
    rows = train.keep_frauds_sample(y_train, BASELINE_MAX_ROWS, params.seed)
    baseline = (x_train[rows], y_train[rows])
    del x_train, y_train, x_valid
    x_test, y_test = data.read_xy(test_path)
    return finish_candidate(
        result,
        y_valid,
        baseline,
        (x_test, y_test),
        params,
        model_dir,
        tracking_uri,
        experiment,
        data_version,
        oracle_label_noise,
        started,
    )


def finish_candidate(
    result: train.TrainResult,
    y_valid: np.ndarray,
    baseline_sample: tuple[np.ndarray, np.ndarray],
    test_window: tuple[np.ndarray, np.ndarray],
    params: train.TrainParams,
    model_dir: Path,
    tracking_uri: str,
    experiment: str,
    data_version: str,
    oracle_label_noise: float | None,
    started: float,
) -> TrainStepResult:
    """Score a trained candidate on the test window, log it to MLflow and write its model directory (both
    engines end here).

    Args:
        baseline_sample: training rows for the logistic baseline (every fraud plus a sample of the rest).
        test_window: the test window's features and labels.
        started: ``time.perf_counter()`` when the step began.
    """
    from sklearn.metrics import average_precision_score

    x_test, y_test = test_window
    test_scores = train.predict_proba(result.booster, x_test)
    test = train.evaluate(y_test, test_scores, result.threshold)
    valid = train.evaluate(y_valid, result.validation_scores, result.threshold)

    metrics: dict[str, float] = {f"test_{k}": v for k, v in test.items()}
    metrics.update({f"validation_{k}": v for k, v in valid.items() if k in ("auprc", "roc_auc", "f1")})
    metrics["best_iteration"] = float(result.best_iteration)
    metrics["scale_pos_weight"] = result.scale_pos_weight
    metrics["train_seconds"] = result.seconds

    baseline = train.logistic_baseline(*baseline_sample, x_test, params.seed)
    metrics["baseline_lr_test_auprc"] = float(average_precision_score(y_test, baseline))
    if oracle_label_noise is not None:
        oracle = true_probability(x_test, oracle_label_noise)
        metrics["oracle_test_auprc"] = float(average_precision_score(y_test, oracle))
        metrics["auprc_vs_oracle"] = metrics["test_auprc"] / metrics["oracle_test_auprc"]

    def log_model(run_id: str) -> None:
        """Inside the run: log the booster as an MLflow model, then write the model directory it serves."""
        import mlflow.xgboost

        logged = mlflow.xgboost.log_model(
            result.booster, name="model", pip_requirements=tracking.PIP_REQUIREMENTS, model_format="ubj"
        )
        mlflow.set_tag("model_uri", logged.model_uri)
        metadata = modeldir.ModelMetadata(
            model_version="candidate",
            threshold=result.threshold,
            mlflow_run_id=run_id,
            data_version=data_version,
            metrics=tracking.finite_metrics(metrics),
            params={k: v for k, v in params.as_dict().items() if isinstance(v, int | float | str)},
        )
        modeldir.save_model_dir(result.booster, metadata, model_dir)

    record = tracking.RunRecord(
        name="train",
        tags={"step": "train", "data_version": data_version},
        params={**params.as_dict(), "data_version": data_version},
        metrics=metrics,
        artifacts=[model_dir],
        artifact_path="serving_model",
    )
    run_id = tracking.log_run(record, tracking_uri, experiment, during=log_model)

    tn, fp, fn, tp = (int(test[k]) for k in ("tn", "fp", "fn", "tp"))
    log.info(
        "test AUPRC %.4f (logistic baseline %.4f%s); step took %.1fs",
        metrics["test_auprc"],
        metrics["baseline_lr_test_auprc"],
        f", best achievable {metrics['oracle_test_auprc']:.4f}" if "oracle_test_auprc" in metrics else "",
        time.perf_counter() - started,
    )
    return TrainStepResult(
        metrics=metrics,
        threshold=result.threshold,
        mlflow_run_id=run_id,
        roc=train.roc_points(y_test, test_scores),
        confusion=[[tn, fp], [fn, tp]],
    )
