"""The pipeline DAG. Every knob is a pipeline parameter with a default (``fraud run --help`` lists them)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import Dataset, Metrics, Model

from components.load import load_data
from components.train import train_model

PIPELINE_NAME = "fraud-detection"
IN_CLUSTER_MLFLOW = "http://mlflow.mlflow.svc.cluster.local:5000"


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Train, audit and promote a card-fraud XGBoost model; the champion is served by KServe.",
)
def fraud_pipeline(
    data_uri: str = "synthetic",
    sensitive_column: str = "age_group",
    synthetic_rows: int = 284_807,
    synthetic_seed: int = 42,
    synthetic_drift: float = 0.0,
    train_fraction: float = 0.60,
    validation_fraction: float = 0.15,
    test_fraction: float = 0.15,
    max_depth: int = 6,
    learning_rate: float = 0.1,
    n_rounds: int = 300,
    early_stopping_rounds: int = 50,
    subsample: float = 0.8,
    colsample_bytree: float = 0.8,
    scale_pos_weight: float = 0.0,
    threshold_beta: float = 1.0,
    seed: int = 42,
    mlflow_tracking_uri: str = IN_CLUSTER_MLFLOW,
    mlflow_experiment: str = "fraud-detection",
) -> NamedTuple(  # type: ignore[valid-type]
    "PipelineOutputs",
    [("data_summary", Metrics), ("test_data", Dataset), ("model", Model), ("train_metrics", Metrics)],
):
    """load -> train (audits, promotion and deploy are added by later steps).

    Args:
        data_uri: CSV/Parquet path or gs:// URI in the credit-card schema, or "synthetic".
        sensitive_column: column audited for fairness; never a model feature ("" for none).
        synthetic_rows: rows generated when data_uri is "synthetic".
        synthetic_seed: generator seed.
        synthetic_drift: covariate drift strength in the latest window of synthetic data (0 = none).
        train_fraction: share of rows (by time) in the training window.
        validation_fraction: share in the validation window (early stopping, threshold).
        test_fraction: share in the test window; the rest is the "current" window.
        max_depth: XGBoost tree depth.
        learning_rate: XGBoost eta.
        n_rounds: maximum boosting rounds.
        early_stopping_rounds: stop after this many rounds without validation AUPRC gain.
        subsample: row subsampling per tree.
        colsample_bytree: column subsampling per tree.
        scale_pos_weight: weight of fraud rows; 0 = sqrt(negatives/positives).
        threshold_beta: the decision threshold maximises F-beta on validation.
        seed: training seed.
        mlflow_tracking_uri: MLflow tracking server (fraud run passes a local SQLite file).
        mlflow_experiment: MLflow experiment name.
    """
    load = load_data(
        data_uri=data_uri,
        sensitive_column=sensitive_column,
        synthetic_rows=synthetic_rows,
        synthetic_seed=synthetic_seed,
        synthetic_drift=synthetic_drift,
        train_fraction=train_fraction,
        validation_fraction=validation_fraction,
        test_fraction=test_fraction,
    ).set_display_name("load")
    train = train_model(
        train_data=load.outputs["train_data"],
        validation_data=load.outputs["validation_data"],
        test_data=load.outputs["test_data"],
        data_version=load.outputs["data_version"],
        oracle_label_noise=load.outputs["oracle_label_noise"],
        max_depth=max_depth,
        learning_rate=learning_rate,
        n_rounds=n_rounds,
        early_stopping_rounds=early_stopping_rounds,
        subsample=subsample,
        colsample_bytree=colsample_bytree,
        scale_pos_weight=scale_pos_weight,
        threshold_beta=threshold_beta,
        seed=seed,
        mlflow_tracking_uri=mlflow_tracking_uri,
        mlflow_experiment=mlflow_experiment,
    ).set_display_name("train")
    PipelineOutputs = NamedTuple(  # noqa: UP014
        "PipelineOutputs",
        [("data_summary", Metrics), ("test_data", Dataset), ("model", Model), ("train_metrics", Metrics)],
    )
    return PipelineOutputs(
        data_summary=load.outputs["summary"],
        test_data=load.outputs["test_data"],
        model=train.outputs["model"],
        train_metrics=train.outputs["metrics"],
    )
