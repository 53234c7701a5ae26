"""MLflow helpers: point at a tracking server (or a local SQLite file), make sure the experiment exists, and
log a run (:func:`log_run`, used by the train step and every audit).

With a ``sqlite:///`` tracking URI the experiment's artifacts go to an ``artifacts`` folder beside the
database, so a local run never scatters ``mlruns`` folders into the working directory of a KFP task.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

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


def finite_metrics(metrics: Mapping[str, Any]) -> dict[str, float]:
    """Drop NaN/inf and non-numbers, which MLflow and KFP reject."""
    return {
        k: float(v)
        for k, v in metrics.items()
        if isinstance(v, int | float) and not isinstance(v, bool) and math.isfinite(float(v))
    }


@dataclass(frozen=True)
class DatasetInput:
    """A data set a run used, logged as an MLflow dataset input (lineage): where it came from, its content
    version, its size and its columns. The data is never uploaded."""

    source: str
    """A path, ``gs://`` URI, or ``synthetic(rows=…, seed=…, drift=…)``."""
    version: str
    """The content hash (``sha256:<hex>``), the same data version the KFP artifacts and the model carry."""
    rows: int
    frauds: int
    columns: Mapping[str, str]
    """Column name -> MLflow type (``double``, ``long``, ``string``)."""
    name: str = "transactions"
    context: str = "training"

    def as_metadata(self) -> dict[str, Any]:
        """The description as KFP artifact metadata (the load step puts it on every window)."""
        return {
            "source": self.source,
            "data_version": self.version,
            "dataset_rows": self.rows,
            "dataset_frauds": self.frauds,
            "dataset_columns": [[name, kind] for name, kind in self.columns.items()],  # a list keeps the order
        }

    @classmethod
    def from_metadata(cls, metadata: Mapping[str, Any]) -> DatasetInput | None:
        """The description back from a window's KFP metadata; None when the load step did not write it."""
        if "dataset_rows" not in metadata or "data_version" not in metadata:
            return None
        return cls(
            source=str(metadata["source"]),
            version=str(metadata["data_version"]),
            rows=int(metadata["dataset_rows"]),
            frauds=int(metadata["dataset_frauds"]),
            columns={str(name): str(kind) for name, kind in metadata.get("dataset_columns") or []},
        )

    @property
    def digest(self) -> str:
        """MLflow's dataset digest (at most 36 characters): the first 32 hex digits of the version."""
        return self.version.split(":", 1)[-1][:32]


DATA_VERSION_TAG = "fraud.data_version"
"""The dataset input tag holding the full data version (MLflow's digest holds only its first 32 hex digits)."""


def _log_dataset(dataset: DatasetInput) -> None:
    import mlflow
    from mlflow.types import ColSpec, Schema

    if dataset.source.startswith("synthetic"):
        from mlflow.data.code_dataset_source import CodeDatasetSource

        source: Any = CodeDatasetSource({"generator": "fraud_detection.synth", "config": dataset.source})
    else:
        import warnings

        from mlflow.data.dataset_source_registry import resolve_dataset_source

        with warnings.catch_warnings():  # "can be interpreted in multiple ways": both readings are the same file
            warnings.simplefilter("ignore", UserWarning)
            source = resolve_dataset_source(dataset.source)
    schema = Schema([ColSpec(kind, name) for name, kind in dataset.columns.items()])
    meta = _profiled_dataset_class()(
        source=source,
        name=dataset.name,
        digest=dataset.digest,
        schema=schema,
        profile={"num_rows": dataset.rows, "num_frauds": dataset.frauds},
    )
    mlflow.log_input(
        meta,
        context=dataset.context,
        tags={DATA_VERSION_TAG: dataset.version, "rows": str(dataset.rows), "frauds": str(dataset.frauds)},
    )


def _profiled_dataset_class() -> Any:
    from mlflow.data.meta_dataset import MetaDataset

    class ProfiledDataset(MetaDataset):
        """A metadata-only dataset that also carries a profile (row and fraud counts)."""

        def __init__(self, *, profile: dict[str, int], **kwargs: Any) -> None:
            self._profile = profile
            super().__init__(**kwargs)

        @property
        def profile(self) -> Any:
            return self._profile

        def to_dict(self) -> dict[str, str]:
            import json

            return {**super().to_dict(), "profile": json.dumps(self._profile)}

    return ProfiledDataset


@dataclass(frozen=True)
class RunRecord:
    """Everything one MLflow run gets: name, tags, params, metrics, files, and nested child runs."""

    name: str
    """The run name."""
    tags: Mapping[str, str] = field(default_factory=dict)
    params: Mapping[str, Any] = field(default_factory=dict)
    metrics: Mapping[str, Any] = field(default_factory=dict)
    """Logged through :func:`finite_metrics` (NaN, inf and non-numbers are left out)."""
    artifacts: Sequence[Path] = ()
    """Files (logged one by one) or folders (logged with their content); paths that do not exist are skipped."""
    artifact_path: str | None = None
    """The folder in the run's artifacts they go to (None: the root)."""
    children: Sequence[RunRecord] = ()
    """Nested runs, logged inside this one."""
    inputs: Sequence[DatasetInput] = ()
    """Data sets the run used, logged as MLflow dataset inputs."""


def _log_inside(record: RunRecord, nested: bool, during: Callable[[str], None] | None) -> str:
    import mlflow

    with mlflow.start_run(run_name=record.name, nested=nested, tags=dict(record.tags) or None) as run:
        if record.params:
            mlflow.log_params(dict(record.params))
        metrics = finite_metrics(dict(record.metrics))
        if metrics:
            mlflow.log_metrics(metrics)
        for dataset in record.inputs:
            _log_dataset(dataset)
        if during is not None:
            during(str(run.info.run_id))
        for path in map(Path, record.artifacts):
            if path.is_dir():
                mlflow.log_artifacts(str(path), artifact_path=record.artifact_path)
            elif path.is_file():
                mlflow.log_artifact(str(path), artifact_path=record.artifact_path)
        for child in record.children:
            _log_inside(child, True, None)
        return str(run.info.run_id)


def log_run(
    record: RunRecord,
    tracking_uri: str,
    experiment: str,
    during: Callable[[str], None] | None = None,
) -> str:
    """Log ``record`` (and its children, nested) as one MLflow run of ``experiment``; return the run's id.

    Args:
        record: what to log.
        tracking_uri: MLflow tracking URI (``sqlite:///...``, ``http://...``); passed in, never read from env.
        experiment: experiment name (created if missing, see :func:`configure`).
        during: called with the run id inside the run, after params and metrics and before the artifacts
            (the train step logs its model there and writes the model directory it then logs).

    The process's tracking URI is restored afterwards, so logging to one store never redirects later calls.
    """
    import mlflow

    before = mlflow.get_tracking_uri()
    try:
        configure(tracking_uri, experiment)
        return _log_inside(record, False, during)
    finally:
        mlflow.set_tracking_uri(before)
