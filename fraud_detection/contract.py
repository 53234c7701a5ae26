"""The data contract's row and column checks, in pieces that merge.

:func:`scan` checks one piece of data (a whole data set, or one partition of it) and collects what it finds;
:func:`merge_scans` merges the pieces' findings into exactly what one scan of the whole would find, and
:func:`raise_for` turns the first of them into the error. The local engine (:func:`fraud_detection.data.validate`)
and the Dask engine (``engines/dask_load.py``) both go through here, so their errors are the same.
Rows are numbered from 1 for the first data row.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass, replace
from typing import Any

import numpy as np
import pandas as pd

from fraud_detection.schema import FEATURES, LABEL, REQUIRED_COLUMNS, TIME, DataValidationError


def _first_row(mask: np.ndarray) -> int:
    return int(np.flatnonzero(mask)[0]) + 1


_LABEL_RANK = 100
_SINGLE_CLASS_RANK = 101
_AMOUNT_RANK = 102
_SENSITIVE_RANK = 103


@dataclass(frozen=True)
class Finding:
    """One broken rule in one scanned piece of data; :func:`raise_for` turns the first into the error."""

    rank: int
    """Order in which the rules are checked (the error names the lowest-ranked finding)."""
    kind: str
    column: str
    count: int
    first_row: int
    """1-based, within the piece scanned (shifted by :func:`merge_scans`)."""
    example: Any = None
    values: tuple[float, ...] = ()
    """For labels other than 0/1: the smallest such values (up to five)."""


@dataclass(frozen=True)
class Scan:
    """What :func:`scan` found in one piece of data: its size, its fraud count and the rules it breaks."""

    rows: int
    positives: int
    findings: tuple[Finding, ...] = ()


def _check_columns(frame: pd.DataFrame, sensitive_column: str) -> None:
    if len(frame.columns) == 0:
        raise DataValidationError("the data set has no columns")
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


def scan(frame: pd.DataFrame, sensitive_column: str = "") -> tuple[Scan, pd.DataFrame | None]:
    """Check one piece of data (a whole data set, or one partition of it) against the data contract.

    Column problems (none, missing, unexpected) raise at once; row problems are collected as findings, so
    the pieces of a partitioned data set can be scanned apart and their findings merged
    (:func:`merge_scans`) into exactly the error one scan of the whole would give.

    Returns:
        The scan, and the piece in canonical form (as :func:`validate` returns it) when it has no findings.
    """
    if len(frame) == 0 and len(frame.columns):
        return Scan(rows=0, positives=0), None
    _check_columns(frame, sensitive_column)
    findings: list[Finding] = []
    out: dict[str, np.ndarray] = {}
    for index, column in enumerate((TIME, *FEATURES, LABEL)):
        series = frame[column]
        if not (pd.api.types.is_numeric_dtype(series) and not pd.api.types.is_bool_dtype(series)):
            numbers = pd.to_numeric(series, errors="coerce")
            bad = numbers.isna().to_numpy() & series.notna().to_numpy()
            if bad.any():
                row = _first_row(bad)
                findings.append(Finding(2 * index, "numeric", column, int(bad.sum()), row, series.iloc[row - 1]))
                continue
            series = numbers
        if series.dtype == np.float64:
            values = series.to_numpy(copy=False)  # no copy: the canonical frame shares the raw column
        else:
            values = series.to_numpy(dtype=np.float64, na_value=np.nan)
        finite = np.isfinite(values)
        if not finite.all():
            findings.append(Finding(2 * index + 1, "finite", column, int((~finite).sum()), _first_row(~finite)))
        out[column] = values

    label = out.get(LABEL)
    positives = 0
    if label is not None:
        not_binary = (label != 0) & (label != 1) & np.isfinite(label)
        if not_binary.any():
            found = tuple(float(v) for v in np.unique(label[not_binary])[:5])
            findings.append(
                Finding(_LABEL_RANK, "label", LABEL, int(not_binary.sum()), _first_row(not_binary), values=found)
            )
        positives = int((label == 1).sum())
    amount = out.get("Amount")
    if amount is not None:
        negative = amount < 0
        if negative.any():
            row = _first_row(negative)
            findings.append(Finding(_AMOUNT_RANK, "amount", "Amount", int(negative.sum()), row, amount[row - 1]))
    if sensitive_column and sensitive_column in frame.columns:
        missing = frame[sensitive_column].isna().to_numpy()
        if missing.any():
            findings.append(
                Finding(_SENSITIVE_RANK, "sensitive", sensitive_column, int(missing.sum()), _first_row(missing))
            )
    result = Scan(rows=len(frame), positives=positives, findings=tuple(findings))
    if findings:
        return result, None
    canonical = pd.DataFrame({c: out[c] for c in (TIME, *FEATURES)}, copy=False)
    canonical[LABEL] = out[LABEL].astype(np.int64)
    if sensitive_column and sensitive_column in frame.columns:
        canonical[sensitive_column] = _as_strings(frame[sensitive_column])
    return result, canonical


def _as_strings(series: pd.Series) -> np.ndarray:
    """A column's values as an object array of ``str`` (``astype(str)``); a categorical one through its few
    categories, ten times faster on millions of rows."""
    if isinstance(series.dtype, pd.CategoricalDtype):
        categories = np.asarray([str(c) for c in series.cat.categories], dtype=object)
        return categories[series.cat.codes.to_numpy()]
    return series.astype(str).to_numpy()


def merge_scans(scans: Sequence[Scan]) -> Scan:
    """The scan of the pieces' concatenation, in order: rows renumbered, counts summed, first rows kept."""
    offset = 0
    merged: dict[int, Finding] = {}
    for piece in scans:
        for finding in piece.findings:
            earlier = merged.get(finding.rank)
            if earlier is None:
                merged[finding.rank] = replace(finding, first_row=finding.first_row + offset)
            else:
                values = tuple(sorted(set(earlier.values) | set(finding.values))[:5])
                merged[finding.rank] = replace(earlier, count=earlier.count + finding.count, values=values)
        offset += piece.rows
    ordered = tuple(merged[rank] for rank in sorted(merged))
    return Scan(rows=offset, positives=sum(piece.positives for piece in scans), findings=ordered)


def _message(finding: Finding) -> str:
    column, count, row = finding.column, finding.count, finding.first_row
    if finding.kind == "numeric":
        return f"column {column!r} must be numeric: row {row} has {finding.example!r}"
    if finding.kind == "finite":
        return f"column {column!r} has {count} missing or infinite value{'s' if count > 1 else ''} (first at row {row})"
    if finding.kind == "label":
        return (
            f"column {column!r} must be 0 or 1: found {', '.join(f'{v:g}' for v in finding.values)} "
            f"(first at row {row})"
        )
    if finding.kind == "amount":
        return f"column 'Amount' has {count} negative value(s) (first at row {row}: {finding.example:g})"
    return f"sensitive column {column!r} has {count} missing value(s) (first at row {row})"


def raise_for(result: Scan) -> None:
    """Raise the error for a (merged) scan's first broken rule, in the order :func:`validate` checks them.

    Raises:
        DataValidationError: no rows, a finding, or a single class.
    """
    if result.rows == 0:
        raise DataValidationError("the data set has no rows")
    single = result.positives in (0, result.rows)
    for finding in result.findings:
        if finding.rank > _SINGLE_CLASS_RANK and single:
            break
        raise DataValidationError(_message(finding))
    if single:
        only = "0 (legitimate)" if result.positives == 0 else "1 (fraud)"
        raise DataValidationError(f"column {LABEL!r} has a single class, {only}: need both fraud and legitimate rows")
