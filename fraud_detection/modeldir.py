"""The serving model directory: the one contract between promotion and the KServe predictor.

A model directory holds two files:

``model.ubj``
    the XGBoost booster in XGBoost's own (UBJSON) format; its output is the calibrated fraud probability.
``metadata.json``
    :class:`ModelMetadata`: feature order, decision threshold, model version, MLflow run id, data version
    and the metrics it was promoted on.

It is written by promotion (and by training, for the candidate) and read from a local path, a ``gs://``
prefix, or a KServe storage-initializer mount (``/mnt/models``).
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING

from pydantic import BaseModel, Field, ValidationError, field_validator

from fraud_detection import storage
from fraud_detection.schema import FEATURES

if TYPE_CHECKING:
    import xgboost as xgb

MODEL_FILE = "model.ubj"
METADATA_FILE = "metadata.json"
FORMAT_VERSION = 1


class ModelDirError(RuntimeError):
    """A model directory is missing, incomplete or unreadable; the message says which file and why."""


class ModelMetadata(BaseModel):
    """What the predictor needs besides the booster, and what an auditor needs to trace a model."""

    format_version: int = FORMAT_VERSION
    model_name: str = "fraud-detector"
    model_version: str = Field(description="MLflow registry version, or 'candidate' before registration")
    feature_names: list[str] = Field(default_factory=lambda: list(FEATURES))
    threshold: float = Field(ge=0.0, le=1.0, description="flag a transaction when probability >= threshold")
    mlflow_run_id: str | None = None
    data_version: str = ""
    metrics: dict[str, float] = Field(default_factory=dict)
    params: dict[str, float | int | str] = Field(default_factory=dict)
    xgboost_version: str = ""
    created_at: str = Field(default_factory=lambda: datetime.now(UTC).isoformat(timespec="seconds"))

    @field_validator("feature_names")
    @classmethod
    def _features_are_the_contract(cls, value: list[str]) -> list[str]:
        if list(value) != list(FEATURES):
            raise ValueError(f"feature_names must be {list(FEATURES)}, got {value}")
        return value


def save_model_dir(booster: xgb.Booster, metadata: ModelMetadata, directory: Path | str) -> Path:
    """Write ``model.ubj`` and ``metadata.json`` into ``directory`` (created if needed)."""
    import xgboost as xgb

    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    booster.save_model(str(path / MODEL_FILE))
    meta = metadata.model_copy(update={"xgboost_version": metadata.xgboost_version or xgb.__version__})
    (path / METADATA_FILE).write_text(meta.model_dump_json(indent=2) + "\n")
    return path


def read_metadata(directory: Path | str) -> ModelMetadata:
    """Read and validate ``metadata.json`` from a local model directory."""
    path = Path(directory) / METADATA_FILE
    if not path.is_file():
        raise ModelDirError(f"{path}: metadata file is missing")
    try:
        return ModelMetadata.model_validate(json.loads(path.read_text()))
    except (json.JSONDecodeError, ValidationError) as error:
        raise ModelDirError(f"{path}: invalid metadata: {error}") from error


def load_model_dir(directory: Path | str) -> tuple[xgb.Booster, ModelMetadata]:
    """Load a local model directory. Raises :class:`ModelDirError` naming the file at fault."""
    import xgboost as xgb

    metadata = read_metadata(directory)
    model_path = Path(directory) / MODEL_FILE
    if not model_path.is_file():
        raise ModelDirError(f"{model_path}: model file is missing")
    booster = xgb.Booster()
    try:
        booster.load_model(str(model_path))
    except xgb.core.XGBoostError as error:
        raise ModelDirError(f"{model_path}: not a readable XGBoost model: {str(error).splitlines()[0]}") from error
    if booster.num_features() != len(metadata.feature_names):
        raise ModelDirError(
            f"{model_path}: booster expects {booster.num_features()} features, "
            f"metadata lists {len(metadata.feature_names)}"
        )
    return booster, metadata


def fetch_model_dir(uri: str, cache_dir: Path | None = None) -> Path:
    """Return a local directory holding the model at ``uri`` (local path returned as is; ``gs://`` copied)."""
    if not storage.is_gcs(uri):
        return Path(uri)
    target = cache_dir or Path(tempfile.mkdtemp(prefix="fraud-model-"))
    try:
        return storage.download_dir(uri, target)
    except FileNotFoundError as error:
        raise ModelDirError(str(error)) from error


def export_model_dir(directory: Path | str, uri: str) -> str:
    """Copy a local model directory to ``uri`` (local folder or ``gs://`` prefix) so no reader sees it half-written.

    Every file of the directory is copied, ``metadata.json`` last. Locally the files are written and synced into
    a hidden staging folder beside the target, which is then renamed into place in one step; a process killed
    meanwhile leaves only the staging folder, which the next export removes. On ``gs://`` each object appears
    whole or not at all, and the metadata object, which readers need first, is written after the rest.

    A model directory is immutable: exporting to a target that already holds the same files is a no-op, and a
    target holding other files is refused. Raises :class:`ModelDirError` naming the file at fault, including
    when the disk fills (and then nothing is left at the target).
    """
    source = Path(directory)
    for name in (MODEL_FILE, METADATA_FILE):
        if not (source / name).is_file():
            raise ModelDirError(f"{source / name}: missing, refusing to export an incomplete model directory")
    if storage.is_gcs(uri):
        try:
            return storage.upload_dir(source, uri, last=METADATA_FILE, create_only=True)
        except FileExistsError as error:
            raise ModelDirError(f"{error}: model directories are immutable, refusing to overwrite") from error
    _export_local(source, Path(uri))
    return uri


def _files(directory: Path) -> dict[str, bytes]:
    return {p.relative_to(directory).as_posix(): p.read_bytes() for p in directory.rglob("*") if p.is_file()}


def _export_local(source: Path, target: Path) -> None:
    import os
    import shutil

    target.parent.mkdir(parents=True, exist_ok=True)
    _remove_abandoned_staging(target)
    if target.exists():
        if _files(target) == _files(source):
            return
        raise ModelDirError(f"{target}: already holds another model; model directories are immutable")
    staging = target.parent / f".{target.name}.partial-{os.getpid()}"
    shutil.rmtree(staging, ignore_errors=True)
    try:
        staging.mkdir()
        for path in sorted(source.rglob("*"), key=lambda p: (p.name == METADATA_FILE, p)):
            if not path.is_file():
                continue
            copy = staging / path.relative_to(source)
            copy.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(path, copy)
            with copy.open("rb+") as handle:
                os.fsync(handle.fileno())
        os.rename(staging, target)
    except OSError as error:
        shutil.rmtree(staging, ignore_errors=True)
        where = error.filename or staging
        raise ModelDirError(
            f"exporting {source} to {target} failed: {error.strerror or error} ({where}); nothing was exported"
        ) from error
    directory = os.open(target.parent, os.O_RDONLY)
    try:
        os.fsync(directory)
    finally:
        os.close(directory)


def _remove_abandoned_staging(target: Path) -> None:
    """Remove staging folders of ``target`` left by exports whose process is gone (killed mid-copy)."""
    import os
    import shutil

    for staging in target.parent.glob(f".{target.name}.partial-*"):
        pid = staging.name.rsplit("-", 1)[-1]
        alive = pid.isdigit() and int(pid) != os.getpid() and Path(f"/proc/{pid}").exists()
        if not alive:
            shutil.rmtree(staging, ignore_errors=True)


def publish(directory: Path | str, serving_root: str, version: str) -> str:
    """Export a model directory as ``{serving_root}/v{version}`` and return that URI.

    Nobody serves it yet: :mod:`fraud_detection.champion` moves the champion pointer (and, locally, the
    ``champion`` link) to it by compare-and-set.
    """
    target = f"{serving_root.rstrip('/')}/v{version}"
    return export_model_dir(directory, target)
