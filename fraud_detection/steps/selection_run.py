"""The bake-off's MLflow run: run ``train`` with the winner's metrics and model directory, a child run per
candidate and, for a tuned family, a grandchild per tuning trial (:func:`log_selection`), and the fields a
model directory records about its training (:func:`params_for_metadata`, :func:`input_fields`)."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from fraud_detection import modeldir, tracking
from fraud_detection.boosting import TrainParams
from fraud_detection.families import XGBOOST
from fraud_detection.metrics import TEST, VALIDATION, Detail, on_window
from fraud_detection.tuning import study

if TYPE_CHECKING:
    from fraud_detection.steps.bakeoff import Candidate


def params_for_metadata(params: TrainParams) -> dict[str, float | int | str]:
    """The training parameters a model directory records: the plain numbers and texts."""
    return {k: v for k, v in params.as_dict().items() if isinstance(v, int | float | str)}


def input_fields(inputs: modeldir.TransactionInputs | None) -> dict[str, Any]:
    """The metadata fields of a model's inputs: none for the public schema (its defaults), else the feature set's
    names and the inputs themselves."""
    if inputs is None:
        return {}
    return {"feature_names": list(inputs.features.names), "transactions": inputs.model_dump()}


def log_selection(
    winner: Candidate,
    candidates: Sequence[Candidate],
    metrics: dict[str, float],
    markdown: str,
    params: TrainParams,
    model_dir: Path,
    tracking_uri: str,
    experiment: str,
    data_version: str,
    dataset: tracking.DatasetInput | None,
    trials: dict[str, list[study.TrialRecord]] | None = None,
    inputs: modeldir.TransactionInputs | None = None,
) -> str:
    """Log MLflow run ``train`` (the winner's metrics and model directory) with a child run per candidate (and,
    for a tuned family, a grandchild per tuning trial); write the winner's model directory inside it. Returns the
    run id."""

    def log_model(run_id: str) -> None:
        """Inside the run: write the winner's model directory (logged as ``serving_model``) and, for XGBoost,
        the MLflow XGBoost model the registry version points at."""
        metadata = modeldir.ModelMetadata(
            model_version="candidate",
            threshold=winner.fitted.threshold,
            mlflow_run_id=run_id,
            data_version=data_version,
            metrics=tracking.finite_metrics(metrics),
            params=params_for_metadata(params),
            **input_fields(inputs),
        )
        modeldir.save_model_dir(winner.fitted.model, metadata, model_dir)
        import mlflow

        if winner.family == XGBOOST:
            import mlflow.xgboost

            logged = mlflow.xgboost.log_model(
                winner.fitted.model.booster,  # type: ignore[attr-defined]
                name="model",
                pip_requirements=tracking.PIP_REQUIREMENTS,
                model_format="ubj",
            )
            mlflow.set_tag("model_uri", logged.model_uri)
        else:
            mlflow.set_tag("model_uri", f"runs:/{run_id}/serving_model")
        mlflow.log_text(markdown, "bakeoff.md")

    children = [
        tracking.RunRecord(
            name=f"candidate-{c.family}",
            tags={"step": "candidate", "family": c.family, "winner": str(c is winner).lower()},
            params={"family": c.family},
            metrics={
                **on_window(VALIDATION, c.validation),
                **on_window(TEST, c.test),
                Detail.TRAIN_SECONDS.value: c.fitted.seconds,
                **c.details,
            },
            children=study.trial_runs(c.family, (trials or {}).get(c.family, [])),
        )
        for c in candidates
    ]
    record = tracking.RunRecord(
        name="train",
        tags={"step": "train", "data_version": data_version, "family": winner.family},
        params={**params.as_dict(), "data_version": data_version, "winner": winner.family},
        metrics=metrics,
        artifacts=[model_dir],
        artifact_path="serving_model",
        children=children,
        inputs=[dataset] if dataset is not None else [],
    )
    return tracking.log_run(record, tracking_uri, experiment, during=log_model)


__all__ = ["input_fields", "log_selection", "params_for_metadata"]
