"""Components of the bake-off: ``train-family`` (one task per model family, fanned out) and ``select-model``."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import ClassificationMetrics, Dataset, Input, Markdown, Metrics, Model, Output

from components import COMPONENTS_IMAGE


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def train_family(
    family: str,
    train_data: Input[Dataset],
    validation_data: Input[Dataset],
    data_version: str,
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
    mlp_hidden_units: list,
    mlp_max_epochs: int,
    mlp_patience: int,
    engine: str,
    dask_scheduler_address: str,
    dask_workers: int,
    negative_sample_rate: float,
    model: Output[Model],
    metrics: Output[Metrics],
) -> float:
    """Train one model family (early stopping and threshold on validation); write its model directory.

    With ``engine=dask`` XGBoost trains on a Dask cluster (``xgboost.dask``) and the MLP on a bounded,
    weighted sample of the training window in this process (docs/dask.md). Returns its validation AUPRC.
    """
    from components import runner
    from fraud_detection.boosting import TrainParams
    from fraud_detection.families import XGBOOST
    from fraud_detection.steps.bakeoff import DASK_MAX_TRAIN_ROWS, train_family_step

    with runner.step(f"train {family}"):
        values = TrainParams.pick({**locals(), "mlp_hidden_units": [int(u) for u in mlp_hidden_units]})
        if engine == "dask" and family == XGBOOST:
            from components.dask_cluster import dask_client, in_kubernetes, window_location
            from fraud_detection.steps.dask_steps import dask_xgboost_step

            remote = bool(dask_scheduler_address) or in_kubernetes()
            train_at, validation_at = (
                window_location(a, runner.path(a), remote) for a in (train_data, validation_data)
            )
            with dask_client(dask_scheduler_address, dask_workers, "train") as client:
                result = dask_xgboost_step(
                    client, train_at, validation_at, values, runner.path(model), data_version, negative_sample_rate
                )
        else:
            result = train_family_step(
                family,
                runner.path(train_data),
                runner.path(validation_data),
                values,
                runner.path(model),
                data_version,
                negative_sample_rate,
                max_train_rows=DASK_MAX_TRAIN_ROWS if engine == "dask" else None,
            )
    runner.log_metrics(metrics, result)
    model.metadata.update({"family": family, "validation_auprc": result["validation_auprc"]})
    return float(result["validation_auprc"])


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def select_model(
    family_models: Input[list[Model]],
    train_data: Input[Dataset],
    validation_data: Input[Dataset],
    test_data: Input[Dataset],
    data_version: str,
    oracle_label_noise: float,
    synthetic_setting: str,
    threshold_beta: float,
    seed: int,
    mlflow_tracking_uri: str,
    mlflow_experiment: str,
    model: Output[Model],
    metrics: Output[Metrics],
    classification: Output[ClassificationMetrics],
    bakeoff: Output[Markdown],
) -> NamedTuple(  # type: ignore[valid-type]
    "SelectOutputs", [("mlflow_run_id", str), ("threshold", float), ("test_auprc", float), ("winner", str)]
):
    """Blend the families, pick the winner on validation AUPRC, report every candidate on the test window
    (Markdown table, metrics ``<family>_test_auprc``), log MLflow run ``train`` with one child per candidate."""
    from collections import namedtuple

    from components import runner
    from fraud_detection.boosting import TrainParams
    from fraud_detection.steps.bakeoff import select_step
    from fraud_detection.tracking import DatasetInput

    with runner.step("select"):
        result = select_step(
            family_dirs=[runner.path(m) for m in family_models],
            train_path=runner.path(train_data),
            validation_path=runner.path(validation_data),
            test_path=runner.path(test_data),
            params=TrainParams.pick(locals()),
            model_dir=runner.path(model),
            tracking_uri=mlflow_tracking_uri,
            experiment=mlflow_experiment,
            data_version=data_version,
            oracle_label_noise=runner.from_kfp(oracle_label_noise),
            synthetic_setting=synthetic_setting,
            dataset=DatasetInput.from_metadata(train_data.metadata),
        )
    runner.log_metrics(metrics, result.metrics)
    classification.log_roc_curve(*result.roc)
    classification.log_confusion_matrix(["legitimate", "fraud"], result.confusion)
    runner.path(bakeoff).write_text(result.markdown)
    bakeoff.metadata["candidates"] = result.bakeoff
    model.metadata.update(
        {
            "mlflow_run_id": result.mlflow_run_id,
            "threshold": result.threshold,
            "framework": result.winner,
            "data_version": data_version,
        }
    )
    SelectOutputs = namedtuple("SelectOutputs", ["mlflow_run_id", "threshold", "test_auprc", "winner"])
    return SelectOutputs(result.mlflow_run_id, result.threshold, result.metrics["test_auprc"], result.winner)
