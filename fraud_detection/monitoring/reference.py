"""The training reference recorded with the model: the baseline of served-traffic skew.

Training writes, beside the model files, ``reference.parquet``: a seeded sample (at most :data:`SAMPLE_ROWS`
rows) of the validation window's features, as the model reads them, with the winner's scores on them in a
``score`` column. The validation window rather than the training rows: it comes from the same time as the
training data, but the model never fitted it, so its scores are distributed as served scores will be when
nothing has shifted (scores on the training rows are overconfident and would raise a score skew at once).
The file goes wherever the model directory goes: the candidate run's ``serving_model`` MLflow artifact, and
every export of the version (``v<N>`` under the serving root).

:func:`load` turns it, or an override file, into the :class:`~fraud_detection.monitoring.shift.Reference` the
joiner measures skew against. Where it comes from:

* a file: a ``shift.Reference`` JSON, or a sample as Parquet or CSV (one column per feature, and ``score``);
* a model directory, local or ``gs://``: its ``reference.parquet``;
* ``runs:/<run id>``: the run's ``serving_model/reference.parquet`` in MLflow;
* ``models:/<name>@<alias>`` or ``models:/<name>/<version>``: the same, of the registered version's run.
"""

from __future__ import annotations

import tempfile
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fraud_detection import storage
from fraud_detection.monitoring import shift

if TYPE_CHECKING:
    from fraud_detection.modeldir import TransactionInputs

REFERENCE_FILE = "reference.parquet"
"""The sample's file name in a model directory."""
SCORE = "score"
"""The column of the model's scores (the joiner's served frames name it the same)."""
SAMPLE_ROWS = 5_000
"""At most this many rows are kept: deciles from 5,000 rows are within a share point of the window's."""
SERVING_ARTIFACT = "serving_model"
"""The run artifact holding the model directory (``fraud_detection.registry.SERVING_ARTIFACT``)."""


class ReferenceError(RuntimeError):
    """A reference cannot be found or read; the message names the place and why."""


def sample(
    features: np.ndarray, names: Sequence[str], scores: np.ndarray, rows: int = SAMPLE_ROWS, seed: int = 0
) -> pd.DataFrame:
    """At most ``rows`` rows of ``features`` (columns ``names``) and their ``scores``, drawn without replacement
    with ``seed`` (so one window gives the same file every time), in their original order."""
    values = np.asarray(features, dtype=np.float32)  # what the model reads: float64 would double the file
    if values.ndim != 2 or values.shape[1] != len(names) or len(values) != len(scores):
        raise ValueError(f"features {values.shape} do not match {len(names)} names and {len(scores)} scores")
    keep = np.arange(len(values))
    if len(values) > rows:
        keep = np.sort(np.random.default_rng(seed).choice(len(values), size=rows, replace=False))
    frame = pd.DataFrame(values[keep], columns=list(names))
    frame[SCORE] = np.asarray(scores, dtype=np.float64)[keep]
    return frame


def record(
    model_dir: Path | str, features: np.ndarray, scores: np.ndarray, inputs: TransactionInputs | None = None
) -> Path:
    """Write the reference sample of ``features`` (the model's input columns: the public schema's, or the feature
    set's of a raw-transaction model's ``inputs``) and ``scores`` into ``model_dir`` (created if needed); returns
    the file."""
    from fraud_detection.schema import FEATURES

    names = list(inputs.features.names) if inputs is not None else list(FEATURES)
    path = Path(model_dir) / REFERENCE_FILE
    path.parent.mkdir(parents=True, exist_ok=True)
    sample(features, names, scores).to_parquet(path, index=False, use_dictionary=False)  # floats seldom repeat
    return path


def from_file(path: Path) -> shift.Reference:
    """The reference of a ``shift.Reference`` JSON file, or of a Parquet or CSV sample."""
    if not path.is_file():
        raise ReferenceError(f"{path}: no such file")
    suffix = "".join(path.suffixes[-2:]) if path.suffix == ".gz" else path.suffix
    if suffix == ".json":
        return shift.Reference.model_validate_json(path.read_text())
    if suffix == ".parquet":
        frame = pd.read_parquet(path)
    elif suffix in (".csv", ".csv.gz"):
        frame = pd.read_csv(path)
    else:
        raise ReferenceError(f"{path}: a reference is a .json, .parquet or .csv file")
    if frame.empty:
        raise ReferenceError(f"{path}: the sample has no rows")
    return shift.Reference.of(frame.select_dtypes("number"))


def _run_of(uri: str, tracking_uri: str | None) -> tuple[Any, str]:
    """The MLflow client and the run id a ``runs:/`` or ``models:/`` URI names."""
    if not tracking_uri:
        raise ReferenceError(f"{uri}: an MLflow URI needs a tracking URI (--tracking-uri, FRAUD_TRACKING_URI)")
    import mlflow

    client = mlflow.MlflowClient(tracking_uri=tracking_uri, registry_uri=tracking_uri)
    if uri.startswith("runs:/"):
        return client, uri.removeprefix("runs:/").strip("/").split("/")[0]
    model = uri.removeprefix("models:/").strip("/")
    if "@" in model:
        name, alias = model.split("@", 1)
        version = client.get_model_version_by_alias(name, alias)
    elif "/" in model:
        name, number = model.split("/", 1)
        version = client.get_model_version(name, number)
    else:
        raise ReferenceError(f"{uri}: name a version, models:/<name>@<alias> or models:/<name>/<version>")
    return client, str(version.run_id)


def _download_from_run(uri: str, tracking_uri: str | None, target: Path) -> Path:
    import mlflow.artifacts
    from mlflow.exceptions import MlflowException

    try:
        _, run_id = _run_of(uri, tracking_uri)
        return Path(
            mlflow.artifacts.download_artifacts(
                run_id=run_id,
                artifact_path=f"{SERVING_ARTIFACT}/{REFERENCE_FILE}",
                dst_path=str(target),
                tracking_uri=tracking_uri,
            )
        )
    except MlflowException as error:
        raise ReferenceError(f"{uri}: no {SERVING_ARTIFACT}/{REFERENCE_FILE} in MLflow: {error.message}") from error


def load(source: str, tracking_uri: str | None = None) -> shift.Reference:
    """The reference at ``source``: a file, a model directory (local or ``gs://``), or a ``runs:/`` or
    ``models:/`` URI read from the MLflow server at ``tracking_uri``.

    Raises:
        ReferenceError: naming the place and what is missing there.
    """
    with tempfile.TemporaryDirectory(prefix="fraud-reference-") as tmp:
        if source.startswith(("runs:/", "models:/")):
            return from_file(_download_from_run(source, tracking_uri, Path(tmp)))
        if storage.is_gcs(source):
            uri = source if source.endswith((".json", ".parquet", ".csv")) else f"{source.rstrip('/')}/{REFERENCE_FILE}"
            try:
                return from_file(storage.download_file(uri, Path(tmp) / Path(uri).name))
            except FileNotFoundError as error:
                raise ReferenceError(f"{uri}: not found") from error
        path = Path(source)
        if path.is_dir():
            if not (path / REFERENCE_FILE).is_file():
                raise ReferenceError(f"{path}: no {REFERENCE_FILE} (a model trained before references were recorded)")
            path = path / REFERENCE_FILE
        return from_file(path)
