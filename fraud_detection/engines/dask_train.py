"""The Dask engine's training: ``xgboost.dask`` on the windows the Dask load wrote, same rules as the local one.

* Early stopping on validation AUPRC over the local engine's validation rule: every fraud row plus a
  seeded share of legitimate rows (each partition keeps a row with the same probability), weighted by the
  inverse of the share kept, at most about :data:`fraud_detection.train.EARLY_STOPPING_MAX_ROWS` rows.
* Positives weighted by ``scale_pos_weight`` (default ``sqrt(negatives/positives)``), the best round kept and
  the booster's base score shifted back by ``log(weight)``: the saved booster is the local engine's kind.
* Optional negative downsampling (:func:`fraud_detection.sampling.keep_negatives_mask`): every fraud, a share
  of legitimate rows weighted by its inverse.
* The threshold uses the whole validation window: its scores and labels (12 bytes a row) come back to the
  step's process; the feature matrices never do (the select step reads validation and test as on the local
  engine).

Persist the frame before taking ``X`` and ``y`` from it: split lazily, the two collections were built from
separately computed partitions that did not line up.
"""

from __future__ import annotations

import logging
import math
import time
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd
import xgboost as xgb
from xgboost import dask as dxgb

from fraud_detection import sampling, train
from fraud_detection.schema import FEATURES, LABEL

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client

log = logging.getLogger(__name__)

_WEIGHT = "__weight"


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


def _read_piece(piece: Piece) -> pd.DataFrame:
    import fsspec
    import pyarrow as pa
    import pyarrow.parquet as pq

    with fsspec.open(piece.url, "rb") as f:
        table = pq.ParquetFile(f).read_row_group(piece.row_group, columns=[*FEATURES, LABEL])
    schema = pa.schema([pa.field(name, pa.float32()) for name in FEATURES] + [pa.field(LABEL, pa.int64())])
    return table.cast(schema).to_pandas()


def read_window(client: Client, path: str | Path) -> dd.DataFrame:
    """A window as float32 features in :data:`FEATURES` order and the label, read by the workers and held in
    their memory, each worker about the same number of rows.

    ``xgboost.dask`` trains each worker on the partitions it holds, and one thread per worker waits for the
    slowest. Left to ``dask.dataframe.read_parquet``, a 6.36M-row training window became three partitions of
    0.3M, 2.5M and 1.0M rows, and one worker held two thirds of the rows; here each row group is a partition,
    placed on the worker with the fewest rows so far.
    """
    import dask.dataframe as dd
    from distributed import wait

    pieces = window_pieces(path)
    if not pieces:
        raise ValueError(f"{path}: no Parquet files in the window")
    workers = sorted(client.scheduler_info()["workers"])
    placed = [
        client.submit(_read_piece, piece, workers=[worker], pure=False)
        for piece, worker in zip(pieces, balance(pieces, workers), strict=True)
    ]
    wait(placed)
    meta = pd.DataFrame({name: pd.Series(dtype=np.float32) for name in FEATURES} | {LABEL: pd.Series(dtype=np.int64)})
    return dd.from_delayed(placed, meta=meta, verify_meta=False)


def _keep_rows(
    part: pd.DataFrame, rate: float, seed: int, partition_info: dict[str, Any] | None = None
) -> pd.DataFrame:
    """Every fraud row and each legitimate row with probability ``rate`` (seeded by partition), weighted
    ``1 / rate`` (frauds 1)."""
    number = (partition_info or {}).get("number", 0)
    y = part[LABEL].to_numpy()
    keep = sampling.keep_negatives_mask(y, rate, np.random.default_rng([seed, number]))
    out = part.loc[keep].copy()
    out[_WEIGHT] = np.where(out[LABEL].to_numpy() == 1, 1.0, 1.0 / rate).astype(np.float32)
    return out


def _weighted_sample(frame: dd.DataFrame, rate: float, seed: int) -> dd.DataFrame:
    meta = frame._meta.assign(**{_WEIGHT: np.float32(1.0)})
    return frame.map_partitions(_keep_rows, rate, seed, meta=meta)


def scores_and_labels(client: Client, booster: xgb.Booster, frame: dd.DataFrame) -> tuple[np.ndarray, np.ndarray]:
    """The booster's probabilities and the labels of a (persisted) window, brought back as two vectors."""
    scores = dxgb.inplace_predict(client, booster, frame[list(FEATURES)])
    computed_scores, labels = client.compute([scores, frame[LABEL]], sync=True)
    return np.asarray(computed_scores, dtype=np.float64), np.asarray(labels, dtype=np.int32)


def train_dask(
    client: Client,
    train_path: str | Path,
    validation_path: str | Path,
    params: train.TrainParams | None = None,
    negative_sample_rate: float = 1.0,
) -> tuple[train.TrainResult, np.ndarray]:
    """Train on the cluster with early stopping on validation AUPRC; pick the threshold on the whole window.

    Args:
        client: connected to the cluster (its workers read the windows).
        train_path, validation_path: windows as either engine writes them.
        params: model knobs (defaults: :class:`fraud_detection.train.TrainParams`).
        negative_sample_rate: share of legitimate training rows kept (1 = all; see :mod:`fraud_detection.sampling`).

    Returns:
        The calibrated booster with its threshold (as :func:`fraud_detection.train.train_booster` returns
        it), and the validation labels.
    """
    params = params or train.TrainParams()
    started = time.perf_counter()
    train_frame = read_window(client, train_path)
    if negative_sample_rate < 1.0:
        train_frame = _weighted_sample(train_frame, negative_sample_rate, params.seed)
    train_frame = train_frame.persist()
    rows, positives = client.compute([train_frame.shape[0], train_frame[LABEL].sum()], sync=True)
    if int(positives) == 0 or int(positives) == int(rows):
        raise ValueError(f"training labels need both classes, got {positives} positive of {rows} rows")
    negatives = (int(rows) - int(positives)) / negative_sample_rate
    weight = params.scale_pos_weight or math.sqrt(negatives / int(positives))

    valid_frame = read_window(client, validation_path).persist()
    valid_rows, valid_positives = client.compute([valid_frame.shape[0], valid_frame[LABEL].sum()], sync=True)
    if int(valid_positives) == 0:
        raise ValueError("validation window has no fraud rows: early stopping and the threshold need some")
    share = sampling.early_stopping_share(int(valid_rows), int(valid_positives), train.EARLY_STOPPING_MAX_ROWS)
    stopping = _weighted_sample(valid_frame, share, params.seed + 1).persist() if share < 1.0 else None

    dtrain = dxgb.DaskQuantileDMatrix(
        client,
        train_frame[list(FEATURES)],
        train_frame[LABEL],
        weight=train_frame[_WEIGHT] if _WEIGHT in train_frame.columns else None,
        feature_names=list(FEATURES),
    )
    source = stopping if stopping is not None else valid_frame
    dvalid = dxgb.DaskQuantileDMatrix(
        client,
        source[list(FEATURES)],
        source[LABEL],
        weight=source[_WEIGHT] if stopping is not None else None,
        ref=dtrain,
        feature_names=list(FEATURES),
    )
    output = dxgb.train(
        client,
        train.booster_params(params, weight),
        dtrain,
        num_boost_round=params.n_rounds,
        evals=[(dvalid, "validation")],
        early_stopping_rounds=params.early_stopping_rounds,
        verbose_eval=False,
    )
    booster: xgb.Booster = output["booster"]
    best = int(booster.best_iteration)
    del dtrain, dvalid, train_frame
    calibrated = train._shift_base_score(booster[: best + 1], -math.log(weight))
    valid_scores, y_valid = scores_and_labels(client, calibrated, valid_frame)
    threshold = train.choose_threshold(y_valid, valid_scores, params.threshold_beta)
    seconds = time.perf_counter() - started
    log.info(
        "dask: trained %d rounds (best %d) in %.1fs on %d rows; threshold %.4f",
        booster.num_boosted_rounds(),
        best + 1,
        seconds,
        int(rows),
        threshold,
    )
    result = train.TrainResult(
        booster=calibrated,
        threshold=threshold,
        best_iteration=best,
        scale_pos_weight=weight,
        seconds=seconds,
        validation_scores=valid_scores,
    )
    return result, y_valid
