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
    engine: str,
    dask_scheduler_address: str,
    dask_workers: int,
    negative_sample_rate: float,
    mlflow_tracking_uri: str,
    mlflow_experiment: str,
    model: Output[Model],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
) -> NamedTuple("TrainOutputs", [("mlflow_run_id", str), ("threshold", float), ("test_auprc", float)]):  # type: ignore[valid-type]
    """Train the candidate (on a Dask cluster with ``engine=dask``); write its model directory (the serving
    contract) and its metrics."""
    from collections import namedtuple

    from components import runner
    from fraud_detection.steps.train import train_step
    from fraud_detection.train import TrainParams

    with runner.step("train"):
        common = {
            "params": TrainParams.pick(locals()),
            "model_dir": runner.path(model),
            "tracking_uri": mlflow_tracking_uri,
            "experiment": mlflow_experiment,
            "data_version": data_version,
            "oracle_label_noise": runner.from_kfp(oracle_label_noise),
            "negative_sample_rate": negative_sample_rate,
        }
        windows = {"train_path": train_data, "validation_path": validation_data, "test_path": test_data}
        if engine == "dask":
            from components.dask_cluster import dask_client, in_kubernetes, window_location
            from fraud_detection.steps.dask_steps import dask_train_step

            remote = bool(dask_scheduler_address) or in_kubernetes()
            places = {k: window_location(a, runner.path(a), remote) for k, a in windows.items()}
            with dask_client(dask_scheduler_address, dask_workers, "train") as client:
                result = dask_train_step(client, **places, **common)  # type: ignore[arg-type]
        else:
            result = train_step(**{k: runner.path(a) for k, a in windows.items()}, **common)  # type: ignore[arg-type]
    runner.log_metrics(metrics, result.metrics)
    classification.log_roc_curve(*result.roc)
    classification.log_confusion_matrix(["legitimate", "fraud"], result.confusion)
    model.metadata.update(
        {"mlflow_run_id": result.mlflow_run_id, "threshold": result.threshold, "framework": "xgboost"}
    )
    TrainOutputs = namedtuple("TrainOutputs", ["mlflow_run_id", "threshold", "test_auprc"])
    return TrainOutputs(result.mlflow_run_id, result.threshold, result.metrics["test_auprc"])
