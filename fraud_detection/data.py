"""Read, validate, version and split a data set in the canonical schema.

Rows in error messages are numbered from 1 for the first data row (the CSV header is not counted), so
"row 17" is line 18 of a CSV file.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from collections.abc import Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass
from pathlib import Path
from typing import Any, BinaryIO

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fraud_detection import storage
from fraud_detection.config import SYNTHETIC_URI, DataKnobs, SplitFractions
from fraud_detection.contract import raise_for, scan
from fraud_detection.schema import FEATURES, LABEL, TIME, DataValidationError
from fraud_detection.synth import SyntheticConfig, generate

log = logging.getLogger(__name__)

SPLITS: tuple[str, ...] = ("train", "validation", "test", "current")

_CSV_SUFFIXES = (".csv", ".csv.gz")
_PARQUET_SUFFIXES = (".parquet", ".pq")


@dataclass
class LoadedData:
    """A validated data set, its content version and where it came from."""

    frame: pd.DataFrame
    version: str
    source: str


def file_kind(uri: str) -> str:
    """``csv`` or ``parquet``, by the file name's suffix; DataValidationError for anything else."""
    name = uri.lower()
    if name.endswith(_CSV_SUFFIXES):
        return "csv"
    if name.endswith(_PARQUET_SUFFIXES):
        return "parquet"
    raise DataValidationError(
        f"{uri}: unsupported file type; expected one of {', '.join(_CSV_SUFFIXES + _PARQUET_SUFFIXES)}"
    )


def read_table(uri: str) -> pd.DataFrame:
    """Read a CSV or Parquet file from a local path or ``gs://``.

    Raises:
        FileNotFoundError: nothing at ``uri``.
        DataValidationError: the file is empty, unreadable, or of an unsupported type.
    """
    kind = file_kind(uri)
    if storage.is_gcs(uri):
        with tempfile.TemporaryDirectory(prefix="fraud-data-") as tmp:
            local = storage.download_file(uri, Path(tmp) / Path(uri).name)
            return _read_local(local, kind, uri)
    path = Path(uri)
    if not path.is_file():
        raise FileNotFoundError(f"{uri}: no such file")
    return _read_local(path, kind, uri)


def _read_local(path: Path, kind: str, uri: str) -> pd.DataFrame:
    if path.stat().st_size == 0:
        raise DataValidationError(f"{uri}: the file is empty")
    return parse_table(path, kind, uri)


def parse_table(source: Any, kind: str, uri: str) -> pd.DataFrame:
    """Parse a non-empty CSV or Parquet file (a path or an open binary file); ``uri`` names it in errors.

    Raises:
        DataValidationError: the file cannot be read as ``kind``.
    """
    try:
        if kind == "csv":
            return pd.read_csv(source, engine="pyarrow")
        return _read_parquet_by_column(source)
    except (pa.ArrowInvalid, ValueError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "Empty CSV file" in first:
            raise DataValidationError(f"{uri}: the file is empty") from error
        raise DataValidationError(f"{uri}: cannot be read as {kind}: {first}") from error


IO_THREADS = 2
"""Threads that read a file's columns (:func:`parse_table`) or write the windows (the load step) at once. Arrow's
own threads barely help a read of one column and never a write of one file; two pieces in flight halve either on
this project's 2-core reference machine."""


def _read_parquet_by_column(source: Any) -> pd.DataFrame:
    """A Parquet file read one column at a time into a frame of separate columns: peak memory is the data plus
    a column per reading thread (``pd.read_parquet`` holds the whole Arrow table and the frame built from it at
    once). A path is read by :data:`IO_THREADS` threads, each with its own reader; an open file by one."""
    parquet = pq.ParquetFile(source)
    names = [n for n in parquet.schema_arrow.names if not n.startswith("__index_level_")]
    if isinstance(source, str | Path):

        def read(name: str) -> pd.Series:
            return pq.ParquetFile(source).read(columns=[name], use_threads=False).column(0).to_pandas()

        with ThreadPoolExecutor(IO_THREADS) as pool:
            columns = list(pool.map(read, names))
    else:
        columns = [parquet.read(columns=[n], use_threads=False).column(0).to_pandas() for n in names]
    return pd.DataFrame(dict(zip(names, columns, strict=True)), copy=False)


def validate(frame: pd.DataFrame, sensitive_column: str = "") -> pd.DataFrame:
    """Check a frame against the data contract and return it in canonical column order and dtypes.

    Checks, each with an error that names the column and the first offending row: no rows; missing or
    unexpected columns; non-numeric values; NaN or infinite values; labels other than 0/1; a single class;
    negative amounts; missing values of the sensitive attribute (when that column is present). The Dask
    engine runs the same :func:`fraud_detection.contract.scan` over each partition and merges the findings,
    so its errors are these.

    Args:
        frame: the raw data.
        sensitive_column: the fairness attribute's column; allowed besides the schema, never required.

    Returns:
        Columns ``Time, V1..V28, Amount`` as float64, ``Class`` as int64, then the sensitive column
        (as strings) if present.
    """
    result, canonical = scan(frame, sensitive_column)
    raise_for(result)
    assert canonical is not None  # raise_for raised for every finding
    return canonical


def data_version(frame: pd.DataFrame) -> str:
    """A content hash of a validated frame: the same data gives the same version, whatever the file format."""
    digest = hashlib.sha256()
    for column in frame.columns:
        digest.update(str(column).encode())
        values = frame[column].to_numpy()
        if values.dtype == object:
            try:
                joined = "\x1f".join(values)  # validated strings: no str() call per row
            except TypeError:
                joined = "\x1f".join(map(str, values))
            digest.update(joined.encode())
        else:
            digest.update(np.ascontiguousarray(values).data.cast("B"))
    return "sha256:" + digest.hexdigest()


def time_split(frame: pd.DataFrame, fractions: SplitFractions | None = None) -> dict[str, pd.DataFrame]:
    """Split by time into train, validation, test and current windows (never at random).

    Rows are ordered by ``Time`` (stable, so ties keep file order) and cut by row count; ``fractions`` default
    to the data knobs' defaults. The first three windows must each contain both classes.
    """
    fractions = fractions or DataKnobs().fractions
    if not frame[TIME].is_monotonic_increasing:
        frame = frame.sort_values(TIME, kind="stable", ignore_index=True)
    bounds = split_bounds(len(frame), fractions)
    windows = {name: frame.iloc[bounds[i] : bounds[i + 1]] for i, name in enumerate(SPLITS)}
    check_windows(bounds, [int(w[LABEL].sum()) for w in windows.values()])
    return windows


def split_bounds(rows: int, fractions: SplitFractions) -> list[int]:
    """The first row (0-based, in time order) of each window, then ``rows``: five numbers."""
    cuts = np.cumsum([0.0, fractions.train, fractions.validation, fractions.test])
    return [round(float(c) * rows) for c in cuts] + [rows]


def check_windows(bounds: Sequence[int], positives: Sequence[int]) -> None:
    """Raise unless the train, validation and test windows each hold both classes and the current one has rows.

    Args:
        bounds: as :func:`split_bounds` returns them.
        positives: fraud rows in each window, in :data:`SPLITS` order.
    """
    for i, name in enumerate(SPLITS[:3]):
        size = bounds[i + 1] - bounds[i]
        if size == 0 or positives[i] in (0, size):
            what = "no rows" if size == 0 else ("no fraud rows" if positives[i] == 0 else "only fraud rows")
            raise DataValidationError(
                f"the {name} window (rows {bounds[i] + 1:,}-{bounds[i + 1]:,} "
                f"by time) has {what}; use more data or change the split fractions"
            )
    if bounds[4] == bounds[3]:
        raise DataValidationError("the current window has no rows; use more data or smaller split fractions")


def read_dataset(
    data_uri: str,
    sensitive_column: str = "",
    synthetic: SyntheticConfig | None = None,
) -> tuple[pd.DataFrame, str]:
    """Read (or generate) and validate a data set: its canonical frame (:func:`validate`) and where it came from.

    Args:
        data_uri: a CSV/Parquet path or ``gs://`` URI, or ``"synthetic"`` for the built-in generator.
        sensitive_column: the fairness attribute's column name ("" for none).
        synthetic: generator knobs when ``data_uri == "synthetic"``.
    """
    if data_uri == SYNTHETIC_URI:
        config = synthetic or SyntheticConfig()
        if sensitive_column and sensitive_column != config.sensitive_column:
            config = SyntheticConfig(**{**config.__dict__, "sensitive_column": sensitive_column})
        raw = generate(config)
        source = f"synthetic(rows={config.n_rows}, seed={config.seed}, drift={config.drift})"
    else:
        raw = read_table(data_uri)
        source = data_uri
    return validate(raw, sensitive_column), source


def load_dataset(
    data_uri: str,
    sensitive_column: str = "",
    synthetic: SyntheticConfig | None = None,
) -> LoadedData:
    """:func:`read_dataset` and the data's version (:func:`data_version`); arguments as there."""
    frame, source = read_dataset(data_uri, sensitive_column, synthetic)
    version = data_version(frame)
    log_loaded(source, frame, version)
    return LoadedData(frame=frame, version=version, source=source)


def log_loaded(source: str, frame: pd.DataFrame, version: str) -> None:
    """Log the one line that says a data set was read and versioned: its source, rows, frauds and version."""
    log.info("loaded %s: %d rows, %d frauds, version %s", source, len(frame), int(frame[LABEL].sum()), version[:19])


ROW_GROUP_ROWS = 262_144
"""Rows per Parquet row group of a window: the Dask engine's unit of reading and of balancing rows across workers
(:func:`fraud_detection.engines.dask_boosting.read_window`), small enough to even them out, large enough to read
fast."""


PARQUET_CODEC = "lz4"
"""Compression of the Parquet files the project writes. Measured on a 3.8M-row training window: LZ4 read back
into the training matrix 0.7 s faster than Snappy (pyarrow's default), wrote no slower and made a file 4 % smaller
(652 MB against 677 MB); Zstandard made it 25 % smaller but wrote twice as slowly."""


FEATURES_KEY = b"fraud_detection.features"
"""The Parquet metadata key under which a window of engineered features lists its feature columns (JSON); a
window without it holds the public schema's :data:`FEATURES`."""


def window_metadata(path: Path | str) -> dict[bytes, bytes]:
    """The key-value metadata of a window file's Parquet schema; for the Dask engine's directory of parts, its
    first part's (every part records the same); empty when there is none."""
    path = Path(path)
    if path.is_dir():
        path = min(path.glob("*.parquet"), default=path)
    if not path.is_file():
        return {}
    return dict(pq.read_schema(str(path)).metadata or {})


def window_columns(path: Path | str) -> list[str]:
    """The column names of a window (a file, or the Dask engine's directory of parts)."""
    import pyarrow.dataset as ds

    return list(ds.dataset(str(path), format="parquet").schema.names)


def window_features(path: Path | str) -> tuple[str, ...]:
    """The model's input columns of a window, in order: those its file records (raw transactions' feature set),
    else the public schema's :data:`FEATURES`."""
    import json

    raw = window_metadata(path).get(FEATURES_KEY)
    return FEATURES if raw is None else tuple(json.loads(raw))


def write_parquet(frame: pd.DataFrame, path: Path | str | BinaryIO, metadata: dict[bytes, bytes] | None = None) -> None:
    """Write a window as Parquet (no index) to a path or an open binary file, compressed with :data:`PARQUET_CODEC`;
    ``metadata`` is added to the schema's key-value metadata (a transaction window's inputs).

    Dictionary encoding only for the columns that are not floating point (labels, groups): a float column has
    almost no repeated values, so its dictionary is built only to be dropped page by page, which made writing
    twice as slow and reading slower, for no smaller file.
    """
    table = pa.Table.from_pandas(frame, preserve_index=False)
    if metadata:
        table = table.replace_schema_metadata({**(table.schema.metadata or {}), **metadata})
    repeated = [f.name for f in table.schema if not pa.types.is_floating(f.type)]
    pq.write_table(
        table,
        path if not isinstance(path, Path) else str(path),
        use_dictionary=repeated,
        row_group_size=ROW_GROUP_ROWS,
        compression=PARQUET_CODEC,
    )


AUDIT_MAX_ROWS = 1_000_000
"""Rows an audit reads from a window at most: above it, every fraud row and a seeded uniform share of the
legitimate rows (see :func:`bounded_rows`)."""


def _bounded(path: Path | str, max_rows: int | None, seed: int) -> tuple[np.ndarray | None, float]:
    """:func:`bounded_rows` and the share of legitimate rows it keeps (1 when it keeps all)."""
    from fraud_detection import sampling

    if max_rows is None:
        return None, 1.0
    y = pq.read_table(str(path), columns=[LABEL]).column(LABEL).to_numpy()
    if y.size <= max_rows:
        return None, 1.0
    share = sampling.early_stopping_share(y.size, int(y.sum()), max_rows)
    if share >= 1.0:
        return None, 1.0
    keep = sampling.keep_negatives_mask(y, share, np.random.default_rng(seed))
    log.info("%s: reading a bounded sample of %d of %d rows (every fraud row)", path, int(keep.sum()), y.size)
    return np.flatnonzero(keep), share


def bounded_rows(path: Path | str, max_rows: int | None, seed: int = 0) -> np.ndarray | None:
    """Sorted rows of a window to read: None (all) when it has no more than ``max_rows``; else every fraud row
    and each legitimate row with the same probability, about ``max_rows`` in all (only the label is read)."""
    return _bounded(path, max_rows, seed)[0]


def read_window(
    path: Path | str, columns: list[str] | None = None, max_rows: int | None = None, seed: int = 0
) -> pd.DataFrame:
    """Read a window written by :func:`write_parquet` (or the Dask engine's directory of parts); with
    ``max_rows``, a bounded sample of it (:func:`bounded_rows`)."""
    rows = bounded_rows(path, max_rows, seed)
    if rows is None:
        return pd.read_parquet(path, columns=columns)
    return pq.read_table(str(path), columns=columns).take(pa.array(rows)).to_pandas()


def read_xy(path: Path | str, max_rows: int | None = None, seed: int = 0) -> tuple[np.ndarray, np.ndarray]:
    """Read only features (float32, in :func:`window_features` order) and labels of a window, batch by batch; with
    ``max_rows``, of a bounded sample of it (:func:`bounded_rows`).

    Never materialises a float64 frame, which keeps peak memory near the size of the float32 matrix.
    """
    return _read_xy_rows(path, bounded_rows(path, max_rows, seed))


XY_BATCH_ROWS = 8_192
"""Rows per batch :func:`read_xy` copies into the feature matrix: a batch's rows stay in the CPU cache while its
columns are written into them (a whole column at a time wrote across the matrix, twice as slow)."""


def _read_xy_rows(path: Path | str, rows: np.ndarray | None) -> tuple[np.ndarray, np.ndarray]:
    """Features and labels of the given sorted rows (None = all) of a window file or directory of parts: Arrow
    decodes batches ahead on its threads while this one copies each into its rows of the matrix."""
    import pyarrow.dataset as ds

    features = window_features(path)
    window = ds.dataset(str(path), format="parquet")
    size = window.count_rows() if rows is None else rows.size
    x = np.empty((size, len(features)), dtype=np.float32)
    y = np.empty(size, dtype=np.int32)
    start = done = 0
    for batch in window.to_batches(columns=[*features, LABEL], batch_size=XY_BATCH_ROWS):
        end = start + batch.num_rows
        if rows is not None:
            first, last = np.searchsorted(rows, [start, end])
            batch = batch.take(pa.array(rows[first:last] - start))
        x_rows = slice(done, done + batch.num_rows)
        for i in range(len(features)):
            x[x_rows, i] = batch.column(i).to_numpy()
        y[x_rows] = batch.column(len(features)).to_numpy()
        start, done = end, done + batch.num_rows
    if done != size:
        raise ValueError(f"{path}: read {done} rows, expected {size}")
    return x, y


def read_xy_weighted(
    path: Path | str, max_rows: int | None = None, seed: int = 0
) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """:func:`read_xy` of a bounded sample, with the row weights that make up for it: legitimate rows kept at
    share ``s`` weigh ``1/s``, frauds 1 (None when the whole window is read), so a model trained on the sample
    with these weights sees the full window's class balance and stays calibrated."""
    rows, share = _bounded(path, max_rows, seed)
    x, y = _read_xy_rows(path, rows)
    if rows is None:
        return x, y, None
    return x, y, np.where(y == 1, 1.0, 1.0 / share).astype(np.float32)
