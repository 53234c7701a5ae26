"""The pipeline DAG. Every knob is a pipeline parameter with a default (``fraud run --help`` lists them)."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Markdown, Metrics, Model

from components.deploy import deploy_model
from components.drift import drift_check
from components.fairness import fairness_audit
from components.load import load_data
from components.poison import poison_collect, poison_level
from components.promote import evaluate_and_promote
from components.train import train_model

PIPELINE_NAME = "fraud-detection"
IN_CLUSTER_MLFLOW = "http://mlflow.mlflow.svc.cluster.local:5000"
DEFAULT_POISON_LEVELS = [0.0, 0.01, 0.02, 0.05, 0.10, 0.20]


class PipelineOutputs(NamedTuple):
    """What a run hands back (``fraud run`` reads these for its summary)."""

    data_summary: Metrics
    test_data: Dataset
    model: Model
    train_metrics: Metrics
    poison_report: HTML
    poison_metrics: Metrics
    poison_table: Dataset
    fairness_report: HTML
    fairness_metrics: Metrics
    drift_report: HTML
    drift_metrics: Metrics
    decision: Markdown


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
    poison_levels: list = DEFAULT_POISON_LEVELS,
    poison_kinds: list = ["random", "targeted"],  # noqa: B006
    drift_data_uri: str = "",
    auprc_tolerance: float = 0.005,
    min_auprc: float = 0.5,
    max_equalized_odds_difference: float = 0.25,
    robustness_level: float = 0.05,
    min_robust_fraction: float = 0.8,
    registered_model_name: str = "fraud-detector",
    serving_root: str = "gs://fraud-detection-models/serving",
    deploy_target: str = "kserve",
    isvc_name: str = "fraud-champion",
    isvc_namespace: str = "fraud",
    serving_image: str = "fraud-detection-serving:0.1.0",
    canary_traffic_percent: int = 0,
    mlflow_tracking_uri: str = IN_CLUSTER_MLFLOW,
    mlflow_experiment: str = "fraud-detection",
) -> PipelineOutputs:
    """load -> train -> {poison sweep, fairness, drift} -> evaluate-and-promote -> (if promoted) deploy.

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
        poison_levels: shares of training labels flipped in the poison sweep (one task per level).
        poison_kinds: label-flip attacks: random (stratified by class) and targeted (fraud hidden as legitimate).
        drift_data_uri: data set to check for drift against the training window ("" = the current window).
        auprc_tolerance: promote only if candidate AUPRC >= champion AUPRC - this.
        min_auprc: promote only if candidate AUPRC >= this.
        max_equalized_odds_difference: fairness gate bound.
        robustness_level: poisoning level at which the robustness gate is measured.
        min_robust_fraction: robustness gate: AUPRC at that level >= this fraction of clean AUPRC.
        registered_model_name: MLflow registered model holding the champion and challenger aliases.
        serving_root: local folder or gs:// prefix where promoted versions are exported as v<N>.
        deploy_target: kserve (create/update the InferenceService) or local (the export is the deployment).
        isvc_name: InferenceService name.
        isvc_namespace: InferenceService namespace.
        serving_image: serving image, used only when the InferenceService does not exist yet.
        canary_traffic_percent: share of traffic for a new champion first (Knative mode; 0 = all at once).
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
    with dsl.ParallelFor(items=poison_levels) as level:
        attacked = poison_level(
            train_data=load.outputs["train_data"],
            validation_data=load.outputs["validation_data"],
            test_data=load.outputs["test_data"],
            model=train.outputs["model"],
            level=level,
            kinds=poison_kinds,
            seed=seed,
        ).set_display_name("poison-level")
    poison = poison_collect(
        results=dsl.Collected(attacked.output),
        robustness_level=robustness_level,
        data_version=load.outputs["data_version"],
        mlflow_tracking_uri=mlflow_tracking_uri,
        mlflow_experiment=mlflow_experiment,
    ).set_display_name("poison-sweep")
    fairness = fairness_audit(
        test_data=load.outputs["test_data"],
        model=train.outputs["model"],
        sensitive_column=sensitive_column,
        mlflow_tracking_uri=mlflow_tracking_uri,
        mlflow_experiment=mlflow_experiment,
    ).set_display_name("fairness")
    drift = drift_check(
        reference_data=load.outputs["train_data"],
        current_data=load.outputs["current_data"],
        model=train.outputs["model"],
        drift_data_uri=drift_data_uri,
        sensitive_column=sensitive_column,
        mlflow_tracking_uri=mlflow_tracking_uri,
        mlflow_experiment=mlflow_experiment,
    ).set_display_name("drift")
    promote = evaluate_and_promote(
        model=train.outputs["model"],
        test_data=load.outputs["test_data"],
        equalized_odds_difference=fairness.outputs["equalized_odds_difference"],
        robust_auprc=poison.outputs["robust_auprc"],
        auprc_tolerance=auprc_tolerance,
        min_auprc=min_auprc,
        max_equalized_odds_difference=max_equalized_odds_difference,
        robustness_level=robustness_level,
        min_robust_fraction=min_robust_fraction,
        registered_model_name=registered_model_name,
        serving_root=serving_root,
        mlflow_tracking_uri=mlflow_tracking_uri,
    ).set_display_name("evaluate-and-promote")
    promote.after(drift)
    with dsl.If(promote.outputs["Output"] == True):  # noqa: E712
        deploy_model(
            decision=promote.outputs["decision"],
            deploy_target=deploy_target,
            isvc_name=isvc_name,
            isvc_namespace=isvc_namespace,
            serving_image=serving_image,
            canary_traffic_percent=canary_traffic_percent,
        ).set_display_name("deploy")
    return PipelineOutputs(
        data_summary=load.outputs["summary"],
        test_data=load.outputs["test_data"],
        model=train.outputs["model"],
        train_metrics=train.outputs["metrics"],
        poison_report=poison.outputs["report"],
        poison_metrics=poison.outputs["metrics"],
        poison_table=poison.outputs["table"],
        fairness_report=fairness.outputs["report"],
        fairness_metrics=fairness.outputs["metrics"],
        drift_report=drift.outputs["report"],
        drift_metrics=drift.outputs["metrics"],
        decision=promote.outputs["decision"],
    )
