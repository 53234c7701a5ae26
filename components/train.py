"""Component ``train``: XGBoost with early stopping on validation AUPRC, logged to MLflow."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Metrics, Model, Output

from components import COMPONENTS_IMAGE


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def train_model(
    train_data: Input[Dataset],
    validation_data: Input[Dataset],
    test_data: Input[Dataset],
    data_version: str,
    oracle_label_noise: float,
    max_depth: int,
    learning_rate: float,
    n_rounds: int,
    early_stopping_rounds: int,
    subsample: float,
    colsample_bytree: float,
    scale_pos_weight: float,
    threshold_beta: float,
    seed: int,
    mlflow_tracking_uri: str,
    mlflow_experiment: str,
    model: Output[Model],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
) -> NamedTuple("TrainOutputs", [("mlflow_run_id", str), ("threshold", float), ("test_auprc", float)]):  # type: ignore[valid-type]
    """Train the candidate; write its model directory (the serving contract) and its metrics."""
    from collections import namedtuple
    from pathlib import Path

    from fraud_detection import runtime
    from fraud_detection.steps.train import train_step
    from fraud_detection.train import TrainParams

    runtime.setup_logging()
    params = TrainParams(
        max_depth=max_depth,
        learning_rate=learning_rate,
        n_rounds=n_rounds,
        early_stopping_rounds=early_stopping_rounds,
        subsample=subsample,
        colsample_bytree=colsample_bytree,
        scale_pos_weight=scale_pos_weight,
        threshold_beta=threshold_beta,
        seed=seed,
    )
    try:
        result = train_step(
            train_path=Path(train_data.path),
            validation_path=Path(validation_data.path),
            test_path=Path(test_data.path),
            params=params,
            model_dir=Path(model.path),
            tracking_uri=mlflow_tracking_uri,
            experiment=mlflow_experiment,
            data_version=data_version,
            oracle_label_noise=oracle_label_noise if oracle_label_noise >= 0 else None,
        )
    except ValueError as error:
        raise runtime.fail("train", error) from error
    from fraud_detection.tracking import finite_metrics

    for name, value in finite_metrics(result.metrics).items():
        metrics.log_metric(name, value)
    fpr, tpr, thresholds = result.roc
    classification.log_roc_curve(fpr, tpr, thresholds)
    classification.log_confusion_matrix(["legitimate", "fraud"], result.confusion)
    model.metadata.update(
        {"mlflow_run_id": result.mlflow_run_id, "threshold": result.threshold, "framework": "xgboost"}
    )
    TrainOutputs = namedtuple("TrainOutputs", ["mlflow_run_id", "threshold", "test_auprc"])
    return TrainOutputs(result.mlflow_run_id, result.threshold, result.metrics["test_auprc"])
