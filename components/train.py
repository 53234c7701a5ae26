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
    tune_trials: int,
    tune_seconds: float,
    engine: str,
    dask_scheduler_address: str,
    dask_workers: int,
    negative_sample_rate: float,
    model: Output[Model],
    metrics: Output[Metrics],
) -> float:
    """Train one model family (early stopping and threshold on validation); write its model directory.

    With ``tune_trials`` or ``tune_seconds`` set, the family's search space is tuned on validation first and the
    best trial's values train it (docs/tuning.md; not with engine=dask's XGBoost). With ``engine=dask`` XGBoost
    trains on a Dask cluster (``xgboost.dask``) and the MLP on a bounded, weighted sample of the training window
    in this process (docs/dask.md). Returns its validation AUPRC.
    """
    from components import runner
    from fraud_detection.boosting import TrainParams
    from fraud_detection.config import ScaleKnobs
    from fraud_detection.families import XGBOOST
    from fraud_detection.steps.bakeoff import DASK_MAX_TRAIN_ROWS, train_family_step

    with runner.step(f"train {family}"):
        params = TrainParams(
            max_depth=max_depth,
            learning_rate=learning_rate,
            n_rounds=n_rounds,
            early_stopping_rounds=early_stopping_rounds,
            subsample=subsample,
            colsample_bytree=colsample_bytree,
            min_child_weight=min_child_weight,
            scale_pos_weight=scale_pos_weight,
            threshold_beta=threshold_beta,
            seed=seed,
            mlp_hidden_units=mlp_hidden_units,
            mlp_max_epochs=mlp_max_epochs,
            mlp_patience=mlp_patience,
            tune_trials=tune_trials,
            tune_seconds=tune_seconds,
        )
        scale = ScaleKnobs(
            engine=engine,  # type: ignore[arg-type]  # text from KFP; the model checks the choice
            dask_scheduler_address=dask_scheduler_address,
            dask_workers=dask_workers,
            negative_sample_rate=negative_sample_rate,
        )
        if scale.engine == "dask" and family == XGBOOST:
            from components.dask_cluster import dask_client, in_kubernetes, window_location
            from fraud_detection.steps.dask_steps import dask_xgboost_step

            remote = bool(scale.dask_scheduler_address) or in_kubernetes()
            train_at, validation_at = (
                window_location(a, runner.path(a), remote) for a in (train_data, validation_data)
            )
            with dask_client(scale.dask_scheduler_address, scale.dask_workers, "train") as client:
                result = dask_xgboost_step(
                    client,
                    train_at,
                    validation_at,
                    params,
                    runner.path(model),
                    data_version,
                    scale.negative_sample_rate,
                )
        else:
            result = train_family_step(
                family,
                runner.path(train_data),
                runner.path(validation_data),
                params,
                runner.path(model),
                data_version,
                scale.negative_sample_rate,
                max_train_rows=DASK_MAX_TRAIN_ROWS if scale.engine == "dask" else None,
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
    oracle_test_auprc: float,
    synthetic_setting: str,
    threshold_beta: float,
    seed: int,
    card_precision_k: int,
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
    (Markdown table, metrics ``<family>_test_auprc``; card precision@k for raw transactions), log MLflow run
    ``train`` with one child per candidate."""
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
            params=TrainParams(threshold_beta=threshold_beta, seed=seed),
            model_dir=runner.path(model),
            tracking_uri=mlflow_tracking_uri,
            experiment=mlflow_experiment,
            data_version=data_version,
            oracle_label_noise=runner.from_kfp(oracle_label_noise),
            oracle_test_auprc=runner.from_kfp(oracle_test_auprc),
            synthetic_setting=synthetic_setting,
            dataset=DatasetInput.from_metadata(train_data.metadata),
            card_precision_k=card_precision_k,
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
