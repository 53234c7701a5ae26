"""The serving model directory: the one contract between promotion and the KServe predictor.

A model directory holds the model's files, each family's in its own format
(:mod:`fraud_detection.families.models`), and one metadata file:

``model.ubj``
    an XGBoost booster in XGBoost's own (UBJSON) format; its output is the calibrated fraud probability.
``mlp.npz``
    a multi-layer perceptron as plain NumPy arrays (read without pickle; forward pass in NumPy).
``metadata.json``
    :class:`ModelMetadata`: the family (``xgboost``, ``mlp`` or ``blend``; a blend lists its parts' weights
    and intercept and keeps both parts' files), the model files, feature order, decision threshold, model
    version, MLflow run id, data version and the metrics it was promoted on.

Format version 2 added the family, the files and the blend. Version 1 directories (an XGBoost
``model.ubj`` and metadata without a family) are still read, as the XGBoost family.

It is written by promotion (and by training, for the candidate) and read from a local path, a ``gs://``
prefix, or a KServe storage-initializer mount (``/mnt/models``).
"""

from __future__ import annotations

import json
import tempfile
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from pydantic import BaseModel, ConfigDict, Field, ValidationError, ValidationInfo, field_validator, model_validator

from fraud_detection import storage
from fraud_detection.families import BLEND, CANDIDATES, XGBOOST
from fraud_detection.families import models as family_models
from fraud_detection.features.definitions import FeatureSet
from fraud_detection.schema import FEATURES
from fraud_detection.transactions.mapping import TransactionMapping

if TYPE_CHECKING:
    import xgboost as xgb

    from fraud_detection.families.base import FamilyModel

MODEL_FILE = family_models.XGBOOST_FILE
"""The XGBoost family's file (the only model file of a version 1 directory)."""
METADATA_FILE = "metadata.json"
FORMAT_VERSION = 2
READABLE_VERSIONS = (1, 2)


class ModelDirError(RuntimeError):
    """A model directory is missing, incomplete or unreadable; the message says which file and why."""


class TransactionInputs(BaseModel):
    """What a model trained on raw transactions reads: the source columns (its mapping) and the features it
    computes from them and from the entities' history. Serving needs nothing else."""

    model_config = ConfigDict(frozen=True, extra="forbid")

    mapping: TransactionMapping = Field(description="source columns to canonical ones, as the data set had them")
    features: FeatureSet = Field(description="the engineered features, in the model's input order")


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
    family: str = Field(default=XGBOOST, description="xgboost, mlp or blend (version 1 directories: xgboost)")
    files: list[str] = Field(default_factory=lambda: [MODEL_FILE], description="the model files, beside this one")
    blend_weights: dict[str, float] = Field(
        default_factory=dict, description="blend only: weight of each part's log-odds, by family"
    )
    blend_intercept: float = 0.0
    tuned_params: dict[str, float | int | str] = Field(
        default_factory=dict, description="the best tuning trial's values (empty: the fixed settings were used)"
    )
    transactions: TransactionInputs | None = Field(
        default=None, description="raw-transaction models only: their mapping and feature set (None: public schema)"
    )

    @field_validator("format_version", "family")
    @classmethod
    def _one_this_code_reads(cls, value: Any, info: ValidationInfo) -> Any:
        allowed = {"format_version": READABLE_VERSIONS, "family": CANDIDATES}[str(info.field_name)]
        if value not in allowed:
            raise ValueError(f"{info.field_name} must be one of {', '.join(map(str, allowed))}, got {value!r}")
        return value

    @model_validator(mode="after")
    def _blend_has_parts(self) -> ModelMetadata:
        if self.family == BLEND and not self.blend_weights:
            raise ValueError("a blend's metadata must list its parts' weights (blend_weights)")
        if self.family != BLEND and self.blend_weights:
            raise ValueError(f"blend_weights belong to a blend, not to family {self.family!r}")
        return self

    @model_validator(mode="after")
    def _features_are_the_contract(self) -> ModelMetadata:
        expected = list(FEATURES) if self.transactions is None else list(self.transactions.features.names)
        if list(self.feature_names) != expected:
            source = "the public schema" if self.transactions is None else "transactions.features"
            raise ValueError(f"feature_names must be {expected} ({source}), got {self.feature_names}")
        return self


def save_model_dir(model: FamilyModel | xgb.Booster, metadata: ModelMetadata, directory: Path | str) -> Path:
    """Write the model's files and ``metadata.json`` into ``directory`` (created if needed).

    ``model`` is a family model (:mod:`fraud_detection.families.models`) or a bare XGBoost booster; the
    metadata's family, files and blend stack are taken from it.
    """
    import xgboost as xgb

    family: Any = family_models.XGBoostModel(model) if isinstance(model, xgb.Booster) else model
    path = Path(directory)
    path.mkdir(parents=True, exist_ok=True)
    family.save(path)
    update: dict[str, Any] = {
        "format_version": FORMAT_VERSION,
        "family": family.family,
        "files": family.files(),
        "xgboost_version": metadata.xgboost_version or xgb.__version__,
        "blend_weights": dict(getattr(family, "weights", {})) if family.family == BLEND else {},
        "blend_intercept": float(getattr(family, "intercept", 0.0)),
    }
    meta = ModelMetadata.model_validate({**metadata.model_dump(), **update})
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


def load_model_dir(directory: Path | str) -> tuple[FamilyModel, ModelMetadata]:
    """Load a local model directory of any family (version 1 or 2).

    Returns the model (probability, log-odds and explanations: :class:`~fraud_detection.families.models.
    FamilyModel`) and its metadata. Raises :class:`ModelDirError` naming the file at fault.
    """
    metadata = read_metadata(directory)
    try:
        model = family_models.load(
            Path(directory),
            metadata.family,
            metadata.blend_weights or None,
            metadata.blend_intercept,
            n_features=len(metadata.feature_names),
        )
    except family_models.ModelFileError as error:
        raise ModelDirError(str(error)) from error
    return model, metadata


def model_files(directory: Path | str) -> list[str]:
    """The files of a model directory: its metadata's model files, then ``metadata.json``."""
    return [*read_metadata(directory).files, METADATA_FILE]


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
    names = model_files(source)
    for name in names:
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
