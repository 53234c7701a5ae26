"""MLflow model registry operations: find the champion, register a candidate, move aliases.

The registered model's versions point at each training run's ``model`` (MLflow's XGBoost flavour) when
XGBoost won the bake-off, else at the run's ``serving_model/`` folder (the run's ``model_uri`` tag says
which); each run also carries ``serving_model/``, the serving model directory, which is what the predictor loads.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraud_detection import modeldir

CHAMPION = "champion"
CHALLENGER = "challenger"
SERVING_ARTIFACT = "serving_model"


@dataclass
class RegisteredModel:
    """A model version and a local copy of its serving model directory."""

    version: str
    run_id: str
    model_dir: Path


def file_sha256(path: Path) -> str:
    """Hex SHA-256 of a file's bytes."""
    digest = hashlib.sha256()
    with path.open("rb") as handle:
        for block in iter(lambda: handle.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


def client(tracking_uri: str) -> Any:
    """An ``MlflowClient`` bound to ``tracking_uri`` (registry included)."""
    import mlflow

    mlflow.set_tracking_uri(tracking_uri)
    return mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)


def version_by_alias(mlflow_client: Any, name: str, alias: str, download_to: Path) -> RegisteredModel | None:
    """The version behind ``alias`` with its serving directory downloaded, or None if there is none."""
    from mlflow.exceptions import MlflowException

    try:
        version = mlflow_client.get_model_version_by_alias(name, alias)
    except MlflowException as error:
        if "RESOURCE_DOES_NOT_EXIST" in str(error.error_code) or "not found" in str(error).lower():
            return None
        raise
    import mlflow.artifacts

    local = mlflow.artifacts.download_artifacts(
        run_id=version.run_id, artifact_path=SERVING_ARTIFACT, dst_path=str(download_to)
    )
    return RegisteredModel(version=str(version.version), run_id=str(version.run_id), model_dir=Path(local))


def register(mlflow_client: Any, name: str, run_id: str, tags: dict[str, str]) -> str:
    """Register the ``model`` logged by ``run_id`` as a new version of ``name``; returns the version."""
    import mlflow
    from mlflow.exceptions import MlflowException

    try:
        mlflow_client.get_registered_model(name)
    except MlflowException:
        mlflow_client.create_registered_model(
            name, description="Card-fraud model (bake-off winner); alias 'champion' is what KServe serves."
        )
    run = mlflow_client.get_run(run_id)
    model_uri = run.data.tags.get("model_uri") or f"runs:/{run_id}/model"
    if model_uri == f"runs:/{run_id}/{SERVING_ARTIFACT}":
        # not an MLflow model flavour (the MLP or the blend won): the version's source is the run's serving folder
        source = f"{run.info.artifact_uri.rstrip('/')}/{SERVING_ARTIFACT}"
        return str(mlflow_client.create_model_version(name, source, run_id=run_id, tags=tags).version)
    version = mlflow.register_model(model_uri, name, tags=tags)
    return str(version.version)


def set_alias(mlflow_client: Any, name: str, alias: str, version: str) -> None:
    """Point ``alias`` at ``version``."""
    mlflow_client.set_registered_model_alias(name, alias, version)


def same_model(a: Path, b: Path) -> bool:
    """True when two model directories hold the same family with byte-identical model files."""
    meta_a, meta_b = modeldir.read_metadata(a), modeldir.read_metadata(b)
    if (meta_a.family, sorted(meta_a.files), meta_a.blend_weights) != (
        meta_b.family,
        sorted(meta_b.files),
        meta_b.blend_weights,
    ):
        return False
    return all(file_sha256(a / name) == file_sha256(b / name) for name in meta_a.files)
