"""The Dask engine's load of raw transactions: parts checked, history features on the cluster, windows by time.

No process holds the data set. The files at the data URI (a file, a directory, a glob or a ``gs://`` prefix,
in path order, as :func:`fraud_detection.engines.dask_load.list_files` finds them) are the parts:

1. **Check.** A worker reads each part and makes it canonical with the mapping
   (:func:`fraud_detection.transactions.contract.canonical`): the local engine's checks and messages, with the
   file's name in front and rows numbered from 1 within that file (line 2 of a CSV file is row 1). What no part
   can check alone is checked across them: both classes in the whole data set (the local message), and
   transaction ids unique across files (the ids shuffled by value; the message names the two files).
2. **Order.** The global order is the local engine's: a stable sort by event time of the files concatenated in
   path order, so rows at the same time keep file order. A row's place in it (``seq``) is its place in its own
   part, plus the rows of every other part before it: those at an earlier time, and those at the same time in
   an earlier file (a binary search of each other part's sorted time keys).
3. **Features** by :func:`fraud_detection.engines.dask_features.compute_features_dask`, the local arithmetic
   per partition of whole entities.
4. **Split and write.** The windows are the local engine's, cut by ``seq`` at :func:`fraud_detection.data.
   split_bounds` (checked with its messages before anything is written). The rows are range-partitioned by
   ``seq``, with the window bounds among the divisions, and each partition is written as
   ``<window>/part-NNNNN.parquet`` in :func:`fraud_detection.data_transactions.featured`'s columns, recording
   :func:`fraud_detection.data_transactions.window_metadata`, so a window directory reads as the local one.
"""

from __future__ import annotations

import hashlib
import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

import numpy as np
import pandas as pd

from fraud_detection import data, data_transactions
from fraud_detection.config import SplitFractions
from fraud_detection.engines import dask_load
from fraud_detection.modeldir import TransactionInputs
from fraud_detection.schema import LABEL as CLASS
from fraud_detection.schema import TIME, DataValidationError
from fraud_detection.transactions import frame as tx
from fraud_detection.transactions.contract import canonical, check_both_classes
from fraud_detection.transactions.mapping import TransactionMapping

if TYPE_CHECKING:
    import dask.dataframe as dd
    from distributed import Client, Future

log = logging.getLogger(__name__)

PART_ROWS = 1_000_000
"""Rows per written part of a window (at most; a window's last part holds the rest)."""


@dataclass(frozen=True)
class DaskTransactionsResult(dask_load.DaskLoadResult):
    """What the load wrote (the data version and each window's size, as the local load reports them), and how
    long each phase took."""

    seconds: dict[str, float]
    """Wall time of each phase: ``check`` (read, check, version), ``order`` (the global ``seq`` and the window
    checks), ``features_and_write``."""


def _check_part(url: str, mapping: TransactionMapping) -> pd.DataFrame:
    """A part's canonical frame (``seq`` still local to the part), its string columns as Arrow strings."""
    raw = dask_load.read_file(url)
    try:
        rows = canonical(raw, mapping, both_classes=False)
    except DataValidationError as error:
        raise DataValidationError(f"{url}: {error}") from error
    strings = {c: "string[pyarrow]" for c in rows.columns if rows[c].dtype == object}
    return rows.astype(strings)


def _summary(rows: pd.DataFrame) -> tuple[int, int, str]:
    return len(rows), int(rows[tx.LABEL].sum()), data.data_version(rows)


def _keys(rows: pd.DataFrame) -> np.ndarray:
    """The part's time keys, sorted (the canonical frame is in time order)."""
    return dask_load.time_keys(rows[tx.EVENT_TIME].to_numpy())


def _placed(rows: pd.DataFrame, index: int, keys: list[np.ndarray]) -> pd.DataFrame:
    """The part with its global ``seq``, without the transaction id (no feature reads it)."""
    own = keys[index]
    seq = np.arange(len(own), dtype=np.int64)
    for other_index, other in enumerate(keys):
        if other_index != index:
            seq += np.searchsorted(other, own, side="right" if other_index < index else "left")
    placed = rows.drop(columns=[tx.TX_ID])
    placed[tx.SEQ] = seq
    return placed


def _window_frauds(rows: pd.DataFrame, cuts: Sequence[int]) -> np.ndarray:
    window = np.searchsorted(np.asarray(cuts), rows[tx.SEQ].to_numpy(), side="right")
    return np.bincount(window, weights=rows[tx.LABEL].to_numpy(), minlength=len(cuts) + 1).astype(np.int64)


def _ids(rows: pd.DataFrame, index: int) -> pd.DataFrame:
    return pd.DataFrame({tx.TX_ID: rows[tx.TX_ID], "part": np.full(len(rows), index, dtype=np.int64)})


def _repeated(ids: pd.DataFrame) -> pd.DataFrame:
    return ids[ids[tx.TX_ID].duplicated(keep=False)]


def _check_ids_across(client: Client, parts: list[Future], files: list[str], column: str) -> None:
    """Raise if a transaction id is in two files (each file's own ids were checked with the file)."""
    import dask.dataframe as dd

    meta = pd.DataFrame({tx.TX_ID: pd.Series(dtype="string[pyarrow]"), "part": pd.Series(dtype=np.int64)})
    ids = dd.from_delayed([client.submit(_ids, part, i, pure=False) for i, part in enumerate(parts)], meta=meta)
    repeated = ids.shuffle(on=tx.TX_ID).map_partitions(_repeated, meta=meta).compute()
    if len(repeated):
        repeated = repeated.sort_values(["part", tx.TX_ID], kind="stable")
        first = repeated.groupby(tx.TX_ID, sort=False)["part"].agg(["min", "max", "size"])
        first = first.sort_values(["max", "min"], kind="stable")
        tx_id, (low, high, _) = first.index[0], first.iloc[0]
        count = int((first["size"] - 1).sum())
        raise DataValidationError(
            f"column {column!r} must hold unique ids: {tx_id!r} is in {files[low]} and {files[high]} "
            f"({count} repeated id{'' if count == 1 else 's'})"
        )


def _divisions(bounds: Sequence[int], part_rows: int) -> list[int]:
    """``seq`` divisions: every window bound, and a cut every ``part_rows`` rows inside a window."""
    starts = sorted({s for i in range(4) for s in range(bounds[i], bounds[i + 1], part_rows)})
    return [*starts, bounds[4] - 1] if starts[-1] < bounds[4] - 1 else [*starts, starts[-1]]


def _write(part: pd.DataFrame, where: str, metadata: dict[bytes, bytes], columns: list[str]) -> tuple[int, int]:
    import fsspec

    part = part.sort_index()
    out = part.reset_index(drop=True).rename(columns={tx.EVENT_TIME: TIME, tx.LABEL: CLASS})[columns]
    if len(out):
        with fsspec.open(where, "wb", auto_mkdir=True) as f:
            data.write_parquet(out, f, metadata)
    return len(out), int(out[CLASS].sum())


def _output_columns(inputs: TransactionInputs, sample: pd.DataFrame, sensitive_column: str) -> list[str]:
    """``featured``'s columns, checked by running it (the local messages) on an empty canonical frame."""
    return list(data_transactions.featured(sample, inputs, sensitive_column).columns)


def _slim(frame: dd.DataFrame, sensitive_column: str) -> dd.DataFrame:
    keep = [tx.SEQ, tx.EVENT_TIME, tx.LABEL]
    keep += [c for c in (data_transactions.CARD_COLUMN, sensitive_column) if c and c in frame.columns]
    return frame[list(dict.fromkeys(keep))]


def load_transactions(
    client: Client,
    data_uri: str,
    inputs: TransactionInputs,
    sensitive_column: str,
    fractions: SplitFractions,
    outputs: Mapping[str, str],
    part_rows: int = PART_ROWS,
) -> DaskTransactionsResult:
    """Read and check the transaction files at ``data_uri`` on the cluster, compute the feature set, and write
    the local engine's windows as directories of Parquet parts.

    Args:
        client: connected to the cluster whose workers read and write.
        data_uri: a file, directory, glob or ``gs://`` prefix of CSV/Parquet files read with ``inputs.mapping``.
        inputs: the mapping and the feature set.
        sensitive_column: the fairness attribute's column ("" for none).
        fractions: the window shares.
        outputs: a directory (local or ``gs://``, reachable by every worker) for each of :data:`data.SPLITS`.
        part_rows: rows per written part at most.

    Raises:
        DataValidationError: a part breaks the contract (the local message, after the file's name), an id is in
            two files, the whole has a single class, the feature set does not fit the mapping, or a window
            lacks a class.
    """
    import dask.dataframe as dd
    from distributed import wait

    from fraud_detection.engines.dask_features import compute_features_dask

    started = time.perf_counter()
    files = dask_load.list_files(data_uri)
    log.info("dask transactions: %d file(s) at %s", len(files), data_uri)
    parts = client.map(_check_part, files, mapping=inputs.mapping, pure=False)
    summaries = client.gather(client.map(_summary, parts, pure=False))
    rows = sum(s[0] for s in summaries)
    positives = sum(s[1] for s in summaries)
    check_both_classes(positives, rows, inputs.mapping.label)
    if inputs.mapping.tx_id is not None and len(files) > 1:
        _check_ids_across(client, parts, files, inputs.mapping.tx_id)
    sample = client.submit(lambda p: p.iloc[:0], parts[0], pure=False).result()
    columns = _output_columns(inputs, sample.drop(columns=[tx.TX_ID]), sensitive_column)
    digest = hashlib.sha256("\n".join([*(s[2] for s in summaries), inputs.model_dump_json()]).encode())
    version = f"sha256-parts:{digest.hexdigest()}"
    checked = time.perf_counter()

    keys = client.map(_keys, parts, pure=False)
    placed = [client.submit(_placed, part, i, keys, pure=False) for i, part in enumerate(parts)]
    wait(placed)
    del parts, keys  # the checked parts and their keys are no longer needed on the workers
    bounds = data.split_bounds(rows, fractions)
    per_part = client.gather(client.map(_window_frauds, placed, cuts=bounds[1:4], pure=False))
    frauds = [int(f) for f in np.sum(per_part, axis=0)]
    data.check_windows(bounds, frauds)
    ordered = time.perf_counter()

    frame = dd.from_delayed(placed, meta=sample.drop(columns=[tx.TX_ID]).assign(**{tx.SEQ: np.int64(0)}))
    divisions = _divisions(bounds, part_rows)
    features = compute_features_dask(frame, inputs.features).set_index(tx.SEQ, divisions=divisions)
    slim = _slim(frame, sensitive_column).set_index(tx.SEQ, divisions=divisions)
    joined = slim.join(features, how="inner")
    metadata = data_transactions.window_metadata(inputs)
    writes = []
    for index, (start, piece) in enumerate(zip(divisions[:-1], joined.to_delayed(), strict=True)):
        window = data.SPLITS[int(np.searchsorted(bounds[1:4], start, side="right"))]
        where = f"{outputs[window].rstrip('/')}/part-{index:05d}.parquet"
        writes.append(client.compute(_delayed_write(piece, where, metadata, columns)))
    written = client.gather(writes)
    del placed, frame, joined  # the futures' last references: the workers release the parts
    if sum(w[0] for w in written) != rows:
        raise RuntimeError(f"dask transactions: wrote {sum(w[0] for w in written)} rows of {rows}")
    result = DaskTransactionsResult(
        version=version,
        source=data_uri,
        files=len(files),
        rows={name: bounds[i + 1] - bounds[i] for i, name in enumerate(data.SPLITS)},
        frauds=dict(zip(data.SPLITS, frauds, strict=True)),
        seconds={
            "check": checked - started,
            "order": ordered - checked,
            "features_and_write": time.perf_counter() - ordered,
        },
    )
    log.info(
        "dask transactions: %d rows, %d frauds, %d features, version %s; written in %.1fs",
        rows,
        positives,
        len(inputs.features.names),
        version[:26],
        time.perf_counter() - started,
    )
    return result


def _delayed_write(piece: Any, where: str, metadata: dict[bytes, bytes], columns: list[str]) -> Any:
    import dask

    return dask.delayed(_write, pure=False)(piece, where, metadata, columns)


__all__ = ["PART_ROWS", "DaskTransactionsResult", "load_transactions"]
