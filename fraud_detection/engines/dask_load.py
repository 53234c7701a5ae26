"""The Dask engine's load: read, validate, version and split partitioned data on a Dask cluster.

No process ever holds the data set. Each input file is one partition, read by a worker:

1. **Scan.** Every worker runs :func:`fraud_detection.contract.scan` (the local engine's validation) on its
   files and keeps, per file, the sorted ``Time`` keys and a running fraud count (12 bytes a row). The
   client merges the scans with :func:`fraud_detection.contract.merge_scans`, so a broken rule raises the very
   error the local engine gives on the concatenated files, rows numbered across files.
2. **Version.** Each worker hashes its canonical partition (:func:`fraud_detection.data.data_version`);
   the version is the SHA-256 of those hashes in file order, ``sha256-parts:…``. It is stable for the same
   files, but differs from the local engine's version of the same rows (that one hashes each column of the
   whole frame in one stream, which no partitioned reader can reproduce).
3. **Split.** The window cuts are the local engine's (row counts of the stable sort by ``Time``). Each cut's
   ``Time`` value is found by a bisection over the partitions' sorted keys (≤ 64 rounds of tiny tasks), ties
   at a cut going to the earlier window in file order, as a stable sort would. The window checks run before
   anything is written, with the local engine's messages.
4. **Write.** Each worker re-reads its file and writes its rows of each window as
   ``<window>/part-<file index>.parquet``, sorted by ``Time`` within the part. A window is then a directory
   that pyarrow, pandas and ``dask.dataframe.read_parquet`` read as one table.
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

from fraud_detection import contract, data
from fraud_detection.config import SplitFractions
from fraud_detection.schema import LABEL, TIME, DataValidationError

if TYPE_CHECKING:
    from distributed import Client

log = logging.getLogger(__name__)

_DATA_SUFFIXES = (".csv", ".csv.gz", ".parquet", ".pq")
_FLIP = np.int64(0x7FFFFFFFFFFFFFFF)


def list_files(uri: str) -> list[str]:
    """The data files at ``uri``: the file itself, every CSV/Parquet file under a directory (or ``gs://``
    prefix), or a glob's matches; sorted by path, which is the order rows are numbered in.

    Raises:
        FileNotFoundError: nothing at ``uri``.
        DataValidationError: a directory without data files.
    """
    import fsspec

    fs, path = fsspec.core.url_to_fs(uri)
    if any(ch in path for ch in "*?["):
        found = sorted(fs.glob(path))
    elif fs.isdir(path):
        found = sorted(p for p in fs.find(path) if p.lower().endswith(_DATA_SUFFIXES))
    elif fs.isfile(path):
        found = [path]
    else:
        raise FileNotFoundError(f"{uri}: no such file or directory")
    found = [p for p in found if not p.rsplit("/", 1)[-1].startswith(("_", "."))]
    if not found:
        raise DataValidationError(f"{uri}: no CSV or Parquet files ({', '.join(_DATA_SUFFIXES)})")
    return [fs.unstrip_protocol(p) if fs.protocol not in ("file", ("file", "local")) else p for p in found]


def read_file(url: str) -> pd.DataFrame:
    """One data file (local or ``gs://``), parsed as the local engine parses it, with its errors."""
    import fsspec

    kind = data.file_kind(url)
    fs, path = fsspec.core.url_to_fs(url)
    if fs.size(path) == 0:
        raise DataValidationError(f"{url}: the file is empty")
    with fs.open(path, "rb") as handle:
        return data.parse_table(handle, kind, url)


def time_keys(times: np.ndarray) -> np.ndarray:
    """int64 keys that sort like the float64 times (a bit trick: flips the magnitude bits of negatives)."""
    bits = (np.asarray(times, dtype=np.float64) + 0.0).view(np.int64)
    return np.where(bits < 0, bits ^ _FLIP, bits)


@dataclass
class _FileScan:
    """A worker's result for one file: the scan and hash go to the client, the keys stay on the worker."""

    scan: contract.Scan
    digest: str
    keys: np.ndarray
    """The file's ``Time`` keys, sorted (stable)."""
    frauds_below: np.ndarray
    """``frauds_below[k]``: fraud rows among the file's first ``k`` rows in ``Time`` order."""


def _canonical(url: str, sensitive_column: str) -> tuple[contract.Scan, pd.DataFrame | None]:
    return contract.scan(read_file(url), sensitive_column)


def _scan_file(url: str, sensitive_column: str) -> _FileScan:
    scan, frame = _canonical(url, sensitive_column)
    if frame is None:
        empty = np.empty(0, dtype=np.int64)
        return _FileScan(scan, "", empty, np.zeros(1, dtype=np.int64))
    keys = time_keys(frame[TIME].to_numpy())
    order = np.argsort(keys, kind="stable")
    frauds = np.concatenate([[0], np.cumsum(frame[LABEL].to_numpy()[order], dtype=np.int64)])
    return _FileScan(scan, data.data_version(frame), keys[order], frauds)


def _summary(result: _FileScan) -> tuple[contract.Scan, str, int, int]:
    keys = result.keys
    low, high = (int(keys[0]), int(keys[-1])) if keys.size else (0, -1)
    return result.scan, result.digest, low, high


def _count_at_most(result: _FileScan, keys: np.ndarray) -> np.ndarray:
    return np.searchsorted(result.keys, keys, side="right").astype(np.int64)


def _frauds_below(result: _FileScan, below: np.ndarray) -> np.ndarray:
    return result.frauds_below[below]


@dataclass(frozen=True)
class DaskLoadResult:
    """What the Dask load wrote: the data version and each window's size (as the local load reports them)."""

    version: str
    source: str
    files: int
    rows: dict[str, int]
    frauds: dict[str, int]


def _cut_keys(client: Client, futures: list[Any], bounds: Sequence[int], low: int, high: int) -> np.ndarray:
    """For each cut (the number of rows before it in time order), the smallest key K with more than that
    many rows at or below K: the key of the cut's first row. Bisection, all cuts at once."""
    targets = np.asarray(bounds, dtype=np.int64)
    lo = np.full(targets.size, low, dtype=np.int64)
    hi = np.full(targets.size, high, dtype=np.int64)
    while (lo < hi).any():
        mid = lo + (hi - lo) // 2
        counts = sum(client.gather(client.map(_count_at_most, futures, keys=mid, pure=False)))
        enough = np.asarray(counts) > targets
        hi = np.where(enough, mid, hi)
        lo = np.where(enough, lo, mid + 1)
    return lo


def _rows_below(client: Client, futures: list[Any], bounds: Sequence[int], keys: np.ndarray) -> np.ndarray:
    """Per file and cut: how many of the file's rows (in time order) fall before the cut. Ties at the cut's
    key go before it in file order, up to the cut's row count, as a stable sort by ``Time`` would place them."""
    at_most = np.stack(client.gather(client.map(_count_at_most, futures, keys=keys, pure=False)))
    below = np.stack(client.gather(client.map(_count_at_most, futures, keys=keys - 1, pure=False)))
    ties = at_most - below
    room = np.asarray(bounds, dtype=np.int64) - below.sum(axis=0)
    ties_before = np.cumsum(ties, axis=0) - ties
    return below + np.clip(room - ties_before, 0, ties)


def _write_file(url: str, below: np.ndarray, index: int, sensitive_column: str, outputs: Mapping[str, str]) -> None:
    import fsspec

    _, frame = _canonical(url, sensitive_column)
    assert frame is not None  # the scan of this very file had no findings
    order = np.argsort(time_keys(frame[TIME].to_numpy()), kind="stable")
    frame = frame.take(order)
    edges = [0, *(int(b) for b in below), len(frame)]
    for i, name in enumerate(data.SPLITS):
        part = frame.iloc[edges[i] : edges[i + 1]]
        if len(part):
            with fsspec.open(f"{outputs[name].rstrip('/')}/part-{index:05d}.parquet", "wb", auto_mkdir=True) as f:
                data.write_parquet(part, f)


def load_and_split(
    client: Client,
    data_uri: str,
    sensitive_column: str,
    fractions: SplitFractions,
    outputs: Mapping[str, str],
) -> DaskLoadResult:
    """Read, validate, version and split the files at ``data_uri`` on the cluster; write the windows.

    Args:
        client: connected to the cluster whose workers read and write.
        data_uri: a file, directory, glob or ``gs://`` prefix of CSV/Parquet files in the canonical schema.
        sensitive_column: the fairness attribute's column ("" for none).
        fractions: the window shares.
        outputs: a directory (local or ``gs://``, reachable by every worker) for each of :data:`data.SPLITS`.

    Raises:
        DataValidationError: as the local engine's load would, for the files concatenated in path order.
    """
    started = time.perf_counter()
    files = list_files(data_uri)
    log.info("dask load: %d file(s) at %s", len(files), data_uri)
    scans = client.map(_scan_file, files, sensitive_column=sensitive_column, pure=False)
    try:
        summaries = client.gather(client.map(_summary, scans))
        merged = contract.merge_scans([s[0] for s in summaries])
        contract.raise_for(merged)
        digest = hashlib.sha256("\n".join(s[1] for s in summaries).encode()).hexdigest()
        version = f"sha256-parts:{digest}"
        bounds = data.split_bounds(merged.rows, fractions)
        cuts = bounds[1:4]
        low = min(s[2] for s in summaries if s[3] >= s[2])
        high = max(s[3] for s in summaries if s[3] >= s[2])
        keys = _cut_keys(client, scans, cuts, low, high)
        below = _rows_below(client, scans, cuts, keys)
        frauds_below = np.stack(client.gather(client.map(_frauds_below, scans, list(below), pure=False)))
    finally:
        client.cancel(scans)
    cumulative = np.concatenate([[0], frauds_below.sum(axis=0), [merged.positives]])
    frauds = [int(f) for f in np.diff(cumulative)]
    data.check_windows(bounds, frauds)
    written = client.map(
        _write_file,
        files,
        list(below),
        list(range(len(files))),
        sensitive_column=sensitive_column,
        outputs=dict(outputs),
        pure=False,
    )
    client.gather(written)
    rows = {name: bounds[i + 1] - bounds[i] for i, name in enumerate(data.SPLITS)}
    result = DaskLoadResult(
        version=version,
        source=data_uri,
        files=len(files),
        rows=rows,
        frauds=dict(zip(data.SPLITS, frauds, strict=True)),
    )
    log.info(
        "dask load: %d rows, %d frauds, version %s; split and written in %.1fs",
        merged.rows,
        merged.positives,
        version[:26],
        time.perf_counter() - started,
    )
    return result
