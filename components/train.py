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
    min_child_weight: float,
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

    from components import runner
    from fraud_detection.steps.train import train_step
    from fraud_detection.tracking import DatasetInput
    from fraud_detection.train import TrainParams

    with runner.step("train"):
        result = train_step(
            train_path=runner.path(train_data),
            validation_path=runner.path(validation_data),
            test_path=runner.path(test_data),
            params=TrainParams.pick(locals()),
            model_dir=runner.path(model),
            tracking_uri=mlflow_tracking_uri,
            experiment=mlflow_experiment,
            data_version=data_version,
            oracle_label_noise=runner.from_kfp(oracle_label_noise),
            dataset=DatasetInput.from_metadata(train_data.metadata),
        )
    runner.log_metrics(metrics, result.metrics)
    classification.log_roc_curve(*result.roc)
    classification.log_confusion_matrix(["legitimate", "fraud"], result.confusion)
    model.metadata.update(
        {
            "mlflow_run_id": result.mlflow_run_id,
            "threshold": result.threshold,
            "framework": "xgboost",
            "data_version": data_version,
        }
    )
    TrainOutputs = namedtuple("TrainOutputs", ["mlflow_run_id", "threshold", "test_auprc"])
    return TrainOutputs(result.mlflow_run_id, result.threshold, result.metrics["test_auprc"])
