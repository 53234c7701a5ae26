"""The Dask engine's booster training: ``xgboost.dask`` on the windows the Dask load wrote, same rules as the local one.

* Early stopping on validation AUPRC over the local engine's validation rule: every fraud row plus a
  seeded share of legitimate rows (each partition keeps a row with the same probability), weighted by the
  inverse of the share kept, at most about :data:`fraud_detection.boosting.EARLY_STOPPING_MAX_ROWS` rows.
* Positives weighted by ``scale_pos_weight`` (default ``sqrt(negatives/positives)``), the best round kept and
  the booster's base score shifted back by ``log(weight)``: the saved booster is the local engine's kind.
* Optional negative downsampling (:func:`fraud_detection.sampling.keep_negatives_mask`): every fraud, a share
  of legitimate rows weighted by its inverse.
* The threshold uses the whole validation window: its scores and labels (12 bytes a row) come back to the
  step's process; the feature matrices never do (the select step reads validation and test as on the local
  engine).

The workers read each piece's features and labels once, into their memory, as separate futures placed on the
same worker (:class:`Window`). Taken lazily from one frame, ``X`` and ``y`` were once computed from separately
scheduled partitions that did not line up; taken from a persisted frame, the features were copied on every
worker when XGBoost built its matrix, which at 30M rows pushed the workers past 4 GiB.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np
import pandas as pd
import xgboost as xgb
from xgboost import dask as dxgb

from fraud_detection import boosting, data, sampling
from fraud_detection.schema import FEATURES, LABEL

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client, Future

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Piece:
    """One row group of one Parquet file of a window: the unit the workers read and hold."""

    url: str
    row_group: int
    rows: int


def window_pieces(path: str | Path) -> list[Piece]:
    """Every row group of a window written by either engine (one Parquet file, or a directory of parts, local
    or ``gs://``), in file order; only the files' footers are read."""
    import fsspec
    import pyarrow.parquet as pq

    fs, root = fsspec.core.url_to_fs(str(path))
    files = sorted(fs.glob(f"{root.rstrip('/')}/*.parquet")) if fs.isdir(root) else [root]
    pieces = []
    for name in files:
        with fs.open(name, "rb") as f:
            metadata = pq.ParquetFile(f).metadata
        url = fs.unstrip_protocol(name)
        pieces += [Piece(url, i, metadata.row_group(i).num_rows) for i in range(metadata.num_row_groups)]
    return pieces


def balance(pieces: list[Piece], workers: list[str]) -> list[str]:
    """A worker for each piece, so that every worker holds about the same number of rows (largest piece first,
    each to the worker holding the fewest rows so far)."""
    held = dict.fromkeys(workers, 0)
    chosen: dict[int, str] = {}
    for i in sorted(range(len(pieces)), key=lambda i: (-pieces[i].rows, i)):
        worker = min(workers, key=lambda w: (held[w], workers.index(w)))
        chosen[i] = worker
        held[worker] += pieces[i].rows
    return [chosen[i] for i in range(len(pieces))]


def _read_features(piece: Piece, columns: tuple[str, ...]) -> pd.DataFrame:
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    with fsspec.open(piece.url, "rb") as f:
        table = pq.ParquetFile(f).read_row_group(piece.row_group, columns=list(columns))
    return table.cast(pa.schema([pa.field(name, pa.float32()) for name in columns])).to_pandas()


def _feature_columns(piece: Piece) -> tuple[str, ...]:
    """The model's input columns a window's part records (raw transactions' feature set), else :data:`FEATURES`."""
    import json

    import fsspec
    import pyarrow.parquet as pq

    with fsspec.open(piece.url, "rb") as f:
        raw = (pq.ParquetFile(f).schema_arrow.metadata or {}).get(data.FEATURES_KEY)
    return FEATURES if raw is None else tuple(json.loads(raw))


def _read_labels(piece: Piece) -> pd.Series:
    import fsspec
    import pyarrow.parquet as pq

    with fsspec.open(piece.url, "rb") as f:
        table = pq.ParquetFile(f).read_row_group(piece.row_group, columns=[LABEL])
    return pd.Series(table.column(LABEL).to_numpy().astype(np.int32), name=LABEL)


_LABELS_META = pd.Series(dtype=np.int32, name=LABEL)
_WEIGHTS_META = pd.Series(dtype=np.float32, name="weight")


@dataclass
class Window:
    """A window held by the workers, piece by piece: each piece's features (float32, in :attr:`columns` order),
    labels and, for a weighted sample, weights, all on the same worker.

    Features and labels are separate from the start: taking the features out of one frame with the label would
    copy them, on every worker, at the moment XGBoost builds its matrix.
    """

    features: list[Future]
    labels: list[Future]
    weights: list[Future] | None = None
    columns: tuple[str, ...] = FEATURES
    """The feature columns, in order."""

    def x(self) -> dd.DataFrame:
        """The features as one Dask frame (partition ``i`` is piece ``i``)."""
        import dask.dataframe as dd

        meta = pd.DataFrame({name: pd.Series(dtype=np.float32) for name in self.columns})
        return dd.from_delayed(self.features, meta=meta, verify_meta=False)

    def y(self) -> dd.Series:
        """The labels, partitioned as :meth:`x`."""
        import dask.dataframe as dd

        return dd.from_delayed(self.labels, meta=_LABELS_META, verify_meta=False)

    def w(self) -> dd.Series | None:
        """The weights, partitioned as :meth:`x` (None: every row weighs 1)."""
        import dask.dataframe as dd

        return None if self.weights is None else dd.from_delayed(self.weights, meta=_WEIGHTS_META, verify_meta=False)

    def counts(self, client: Client) -> tuple[int, int]:
        """Rows and fraud rows."""
        sizes = client.gather([client.submit(_count, labels, pure=False) for labels in self.labels])
        return sum(rows for rows, _ in sizes), sum(frauds for _, frauds in sizes)


def _count(labels: pd.Series) -> tuple[int, int]:
    return len(labels), int(labels.sum())


def read_window(client: Client, path: str | Path) -> Window:
    """A window read by the workers into their memory, each worker about the same number of rows.

    ``xgboost.dask`` trains each worker on the partitions it holds, and one thread per worker waits for the
    slowest. Left to ``dask.dataframe.read_parquet``, a 6.36M-row training window became three partitions of
    0.3M, 2.5M and 1.0M rows, and one worker held two thirds of the rows; here each row group is a piece,
    placed on the worker with the fewest rows so far (another worker takes it if that one is gone).
    """
    from distributed import wait

    pieces = window_pieces(path)
    if not pieces:
        raise ValueError(f"{path}: no Parquet files in the window")
    columns = _feature_columns(pieces[0])
    workers = sorted(client.scheduler_info()["workers"])
    features, labels = [], []
    for piece, worker in zip(pieces, balance(pieces, workers), strict=True):
        where = {"workers": [worker], "allow_other_workers": True, "pure": False}
        features.append(client.submit(_read_features, piece, columns, **where))
        labels.append(client.submit(_read_labels, piece, **where))
    wait(features + labels)
    return Window(features, labels, columns=columns)


def _keep_mask(labels: pd.Series, rate: float, seed: int, number: int) -> np.ndarray:
    return sampling.keep_negatives_mask(labels.to_numpy(), rate, np.random.default_rng([seed, number]))


def _take(part: pd.DataFrame | pd.Series, keep: np.ndarray) -> pd.DataFrame | pd.Series:
    return part.loc[keep].reset_index(drop=True)


def _sample_weights(labels: pd.Series, keep: np.ndarray, rate: float, weights: pd.Series | None) -> pd.Series:
    kept = labels.to_numpy()[keep]
    own = np.where(kept == 1, 1.0, 1.0 / rate).astype(np.float32)
    if weights is not None:
        own = own * weights.to_numpy()[keep]
    return pd.Series(own, name="weight")


def weighted_sample(client: Client, window: Window, rate: float, seed: int) -> Window:
    """Every fraud row and each legitimate row with probability ``rate`` (seeded by piece), weighted ``1 / rate``
    (frauds 1), on the workers that hold the pieces."""
    features, labels, weights = [], [], []
    for number, (x, y) in enumerate(zip(window.features, window.labels, strict=True)):
        keep = client.submit(_keep_mask, y, rate, seed, number, pure=False)
        features.append(client.submit(_take, x, keep, pure=False))
        labels.append(client.submit(_take, y, keep, pure=False))
        previous = window.weights[number] if window.weights is not None else None
        weights.append(client.submit(_sample_weights, y, keep, rate, previous, pure=False))
    return Window(features, labels, weights, window.columns)


def scores_and_labels(client: Client, booster: xgb.Booster, window: Window) -> tuple[np.ndarray, np.ndarray]:
    """The booster's probabilities and the labels of a window, brought back as two vectors."""
    scores = dxgb.inplace_predict(client, booster, window.x())
    computed_scores, labels = client.compute([scores, window.y()], sync=True)
    return np.asarray(computed_scores, dtype=np.float64), np.asarray(labels, dtype=np.int32)


def train_booster_dask(
    client: Client,
    train_path: str | Path,
    validation_path: str | Path,
    params: boosting.TrainParams | None = None,
    negative_sample_rate: float = 1.0,
) -> tuple[boosting.TrainResult, np.ndarray]:
    """Train a booster on the cluster with early stopping on validation AUPRC; pick the threshold on the whole window.

    Args:
        client: connected to the cluster (its workers read the windows).
        train_path, validation_path: windows as either engine writes them.
        params: model knobs (defaults: :class:`fraud_detection.boosting.TrainParams`).
        negative_sample_rate: share of legitimate training rows kept (1 = all; see :mod:`fraud_detection.sampling`).

    Returns:
        The calibrated booster with its threshold (as :func:`fraud_detection.boosting.train_booster` returns
        it), and the validation labels.
    """
    params = params or boosting.TrainParams()
    started = time.perf_counter()
    training = read_window(client, train_path)
    if negative_sample_rate < 1.0:
        training = weighted_sample(client, training, negative_sample_rate, params.seed)
    rows, positives = training.counts(client)
    if positives == 0 or positives == rows:
        raise ValueError(f"training labels need both classes, got {positives} positive of {rows} rows")
    negatives = (rows - positives) / negative_sample_rate
    weight = params.scale_pos_weight or math.sqrt(negatives / positives)

    validation = read_window(client, validation_path)
    valid_rows, valid_positives = validation.counts(client)
    if valid_positives == 0:
        raise ValueError("validation window has no fraud rows: early stopping and the threshold need some")
    share = sampling.early_stopping_share(valid_rows, valid_positives, boosting.EARLY_STOPPING_MAX_ROWS)
    stopping = weighted_sample(client, validation, share, params.seed + 1) if share < 1.0 else validation

    dtrain = dxgb.DaskQuantileDMatrix(
        client, training.x(), training.y(), weight=training.w(), feature_names=list(training.columns)
    )
    dvalid = dxgb.DaskQuantileDMatrix(
        client, stopping.x(), stopping.y(), weight=stopping.w(), ref=dtrain, feature_names=list(training.columns)
    )
    output = dxgb.train(
        client,
        boosting.booster_params(params, weight),
        dtrain,
        num_boost_round=params.n_rounds,
        evals=[(dvalid, "validation")],
        early_stopping_rounds=params.early_stopping_rounds,
        verbose_eval=False,
    )
    booster: xgb.Booster = output["booster"]
    del dtrain, dvalid, training, stopping
    return boosting.finish(
        booster,
        weight,
        params,
        started,
        lambda calibrated: scores_and_labels(client, calibrated, validation),
        where=f"dask, {rows:,} rows: ",
    )
