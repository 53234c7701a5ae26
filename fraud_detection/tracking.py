"""MLflow helpers: point at a tracking server (or a local SQLite file) and make sure the experiment exists.

With a ``sqlite:///`` tracking URI the experiment's artifacts go to an ``artifacts`` folder beside the
database, so a local run never scatters ``mlruns`` folders into the working directory of a KFP task.
"""

from __future__ import annotations

import logging
from pathlib import Path
from typing import Any

log = logging.getLogger(__name__)

PIP_REQUIREMENTS = ["xgboost-cpu", "numpy", "pandas"]
"""Given to ``log_model`` so MLflow does not spend seconds inferring requirements."""


def artifact_location(tracking_uri: str) -> str | None:
    """The artifact root for a new experiment: beside the database for SQLite, the server's default otherwise."""
    if tracking_uri.startswith("sqlite:///"):
        database = Path(tracking_uri[len("sqlite:///") :])
        return (database.parent / "artifacts").resolve().as_uri()
    return None


def configure(tracking_uri: str, experiment: str) -> str:
    """Set the tracking URI and return the id of ``experiment``, creating it if needed."""
    import mlflow

    if tracking_uri.startswith("sqlite:///"):
        Path(tracking_uri[len("sqlite:///") :]).parent.mkdir(parents=True, exist_ok=True)
    mlflow.set_tracking_uri(tracking_uri)
    found = mlflow.get_experiment_by_name(experiment)
    if found is not None:
        experiment_id = str(found.experiment_id)
    else:
        experiment_id = str(mlflow.create_experiment(experiment, artifact_location=artifact_location(tracking_uri)))
    mlflow.set_experiment(experiment_id=experiment_id)
    return experiment_id


def finite_metrics(metrics: dict[str, Any]) -> dict[str, float]:
    """Drop NaN/inf and non-numbers, which MLflow and KFP reject."""
    import math

    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
    }
