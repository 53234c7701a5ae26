"""Read, validate, version and split a data set in the canonical schema.

Rows in error messages are numbered from 1 for the first data row (the CSV header is not counted), so
"row 17" is line 18 of a CSV file.
"""

from __future__ import annotations

import hashlib
import logging
import tempfile
from dataclasses import dataclass
from pathlib import Path

import numpy as np
import pandas as pd
import pyarrow as pa
import pyarrow.parquet as pq

from fraud_detection import storage
from fraud_detection.config import SYNTHETIC_URI, DataKnobs, SplitFractions
from fraud_detection.schema import FEATURES, LABEL, REQUIRED_COLUMNS, TIME, DataValidationError
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


def _file_kind(uri: str) -> str:
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
    kind = _file_kind(uri)
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
    try:
        if kind == "csv":
            return pd.read_csv(path, engine="pyarrow")
        return pd.read_parquet(path)
    except (pa.ArrowInvalid, ValueError, OSError) as error:
        first = str(error).strip().splitlines()[0] if str(error).strip() else type(error).__name__
        if "Empty CSV file" in first:
            raise DataValidationError(f"{uri}: the file is empty") from error
        raise DataValidationError(f"{uri}: cannot be read as {kind}: {first}") from error


def _first_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0]) + 1


def validate(frame: pd.DataFrame, sensitive_column: str = "") -> pd.DataFrame:
    """Check a frame against the data contract and return it in canonical column order and dtypes.

    Checks, each with an error that names the column and the first offending row: no rows; missing or
    unexpected columns; non-numeric values; NaN or infinite values; labels other than 0/1; a single class;
    negative amounts; missing values of the sensitive attribute (when that column is present).

    Args:
        frame: the raw data.
        sensitive_column: the fairness attribute's column; allowed besides the schema, never required.

    Returns:
        Columns ``Time, V1..V28, Amount`` as float64, ``Class`` as int64, then the sensitive column
        (as strings) if present.
    """
    if len(frame.columns) == 0 or len(frame) == 0:
        raise DataValidationError("the data set has no rows" if len(frame.columns) else "the data set has no columns")
    missing = [c for c in REQUIRED_COLUMNS if c not in frame.columns]
    if missing:
        raise DataValidationError(f"missing columns: {', '.join(missing)} (required: Time, V1..V28, Amount, Class)")
    allowed = set(REQUIRED_COLUMNS) | ({sensitive_column} if sensitive_column else set())
    extra = [str(c) for c in frame.columns if c not in allowed]
    if extra:
        hint = f", plus the sensitive attribute {sensitive_column!r}" if sensitive_column else ""
        raise DataValidationError(
            f"unexpected columns: {', '.join(extra)} (the schema is Time, V1..V28, Amount, Class{hint})"
        )

    out: dict[str, np.ndarray] = {}
    for column in (TIME, *FEATURES, LABEL):
        series = frame[column]
        if not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)):
            numbers = pd.to_numeric(series, errors="coerce")
            bad = numbers.isna().to_numpy() & series.notna().to_numpy()
            if bad.any():
                row = _first_row(bad)
                raise DataValidationError(f"column {column!r} must be numeric: row {row} has {series.iloc[row - 1]!r}")
            series = numbers
        values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(values)
        if not finite.all():
            count = int((~finite).sum())
            raise DataValidationError(
                f"column {column!r} has {count} missing or infinite value{'s' if count > 1 else ''} "
                f"(first at row {_first_row(~finite)})"
            )
        out[column] = values

    label = out[LABEL]
    not_binary = (label != 0) & (label != 1)
    if not_binary.any():
        found = sorted({float(v) for v in np.unique(label[not_binary])[:5]})
        raise DataValidationError(
            f"column {LABEL!r} must be 0 or 1: found {', '.join(f'{v:g}' for v in found)} "
            f"(first at row {_first_row(not_binary)})"
        )
    positives = int(label.sum())
    if positives in (0, label.size):
        only = "0 (legitimate)" if positives == 0 else "1 (fraud)"
        raise DataValidationError(f"column {LABEL!r} has a single class, {only}: need both fraud and legitimate rows")
    negative = out["Amount"] < 0
    if negative.any():
        row = _first_row(negative)
        raise DataValidationError(
            f"column 'Amount' has {int(negative.sum())} negative value(s) "
            f"(first at row {row}: {out['Amount'][row - 1]:g})"
        )

    result = pd.DataFrame({c: out[c] for c in (TIME, *FEATURES)}, copy=False)
    result[LABEL] = label.astype(np.int64)
    if sensitive_column and sensitive_column in frame.columns:
        groups = frame[sensitive_column]
        if groups.isna().any():
            mask = groups.isna().to_numpy()
            raise DataValidationError(
                f"sensitive column {sensitive_column!r} has {int(mask.sum())} missing value(s) "
                f"(first at row {_first_row(mask)})"
            )
        result[sensitive_column] = groups.astype(str).to_numpy()
    return result


def data_version(frame: pd.DataFrame) -> str:
    """A content hash of a validated frame: the same data gives the same version, whatever the file format."""
    digest = hashlib.sha256()
    for column in frame.columns:
        digest.update(str(column).encode())
        values = frame[column].to_numpy()
        if values.dtype == object:
            digest.update("\x1f".join(map(str, values)).encode())
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
    n = len(frame)
    cuts = np.cumsum([0.0, fractions.train, fractions.validation, fractions.test])
    bounds = [round(float(c) * n) for c in cuts] + [n]
    windows = {name: frame.iloc[bounds[i] : bounds[i + 1]] for i, name in enumerate(SPLITS)}
    for name in SPLITS[:3]:
        window = windows[name]
        positives = int(window[LABEL].sum()) if len(window) else 0
        if len(window) == 0 or positives in (0, len(window)):
            what = "no rows" if len(window) == 0 else ("no fraud rows" if positives == 0 else "only fraud rows")
            raise DataValidationError(
                f"the {name} window (rows {bounds[SPLITS.index(name)] + 1:,}-{bounds[SPLITS.index(name) + 1]:,} "
                f"by time) has {what}; use more data or change the split fractions"
            )
    if len(windows["current"]) == 0:
        raise DataValidationError("the current window has no rows; use more data or smaller split fractions")
    return windows


def load_dataset(
    data_uri: str,
    sensitive_column: str = "",
    synthetic: SyntheticConfig | None = None,
) -> LoadedData:
    """Read (or generate) and validate a data set, and compute its version.

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
    frame = validate(raw, sensitive_column)
    del raw
    version = data_version(frame)
    log.info("loaded %s: %d rows, %d frauds, version %s", source, len(frame), int(frame[LABEL].sum()), version[:19])
    return LoadedData(frame=frame, version=version, source=source)


def write_parquet(frame: pd.DataFrame, path: Path | str) -> None:
    """Write a window as Parquet (no index)."""
    pq.write_table(pa.Table.from_pandas(frame, preserve_index=False), str(path))


def read_window(path: Path | str, columns: list[str] | None = None) -> pd.DataFrame:
    """Read a window written by :func:`write_parquet`."""
    return pd.read_parquet(path, columns=columns)


def read_xy(path: Path | str) -> tuple[np.ndarray, np.ndarray]:
    """Read only features (float32, :data:`FEATURES` order) and labels of a window, column by column.

    Never materialises a float64 frame, which keeps peak memory near the size of the float32 matrix.
    """
    table = pq.read_table(str(path), columns=[*FEATURES, LABEL])
    x = np.empty((table.num_rows, len(FEATURES)), dtype=np.float32)
    for i, name in enumerate(FEATURES):
        x[:, i] = table.column(name).to_numpy()
    y = table.column(LABEL).to_numpy().astype(np.int32)
    return x, y
