"""Data and prediction drift between the training window and the current window, with Evidently (0.7 API).

What is compared:

* **Features**: the model's features only (``V1..V28, Amount``, or a raw-transaction model's feature set).
  ``Time`` (it always "drifts": the current window is later by construction), the label (not known at serving
  time) and the sensitive attribute are never part of the comparison.
* **Score**: the model's fraud score on both windows, compared on the log-odds scale (``logit(p)``). Scores
  are concentrated near zero, so on the probability scale a shift of the whole legitimate bulk is invisible
  next to the rare high scores; on the log-odds scale it is not.

Method: Evidently's normed Wasserstein distance (distance / reference standard deviation) per column with
threshold ``column_threshold`` (0.1 = Evidently's default for numerical columns with > 1000 rows): robust to
the sample sizes here, where p-value tests flag negligible differences as significant. The data set has
drifted when the share of drifted features reaches ``share_threshold`` or the score has drifted.

The reference window is subsampled (seeded, uniformly) to at most ``reference_rows`` rows: the Wasserstein
distance needs far fewer than the 170,000 training rows to be estimated to two decimals, and Evidently's
cost grows with the rows it plots.

:func:`run_drift` returns a :class:`DriftResult` that keeps Evidently's snapshot;
:mod:`fraud_detection.reports.drift` saves its HTML report.
"""

from __future__ import annotations

import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np
import pandas as pd
from pydantic import Field
from pydantic.dataclasses import dataclass as checked_dataclass

from fraud_detection.audits.jsonable import json_safe
from fraud_detection.schema import FEATURES, LABEL, TIME, DataValidationError

SCORE_COLUMN = "fraud_score_logit"
"""Name of the score column in the drift report (log-odds of the model's fraud probability)."""

METHOD = "wasserstein"
"""Evidently's drift method for every column."""
METHOD_DESCRIPTION = "Wasserstein distance normed by the reference standard deviation (Evidently 'wasserstein')"


@checked_dataclass(frozen=True)
class DriftParams:
    """Thresholds and sampling of the drift audit (the pipeline runs it with these defaults)."""

    share_threshold: float = Field(default=0.1, gt=0, le=1)
    """The data set has drifted when at least this share of the model's features has drifted (0.1 = 3 of 29)."""
    column_threshold: float = Field(default=0.1, gt=0)
    """A column has drifted when its normed Wasserstein distance is at least this."""
    score_threshold: float = Field(default=0.1, gt=0)
    """The score has drifted when its normed Wasserstein distance (log-odds scale) is at least this."""
    reference_rows: int = Field(default=30_000, ge=100)
    """Subsample the reference window to at most this many rows (seeded)."""
    seed: int = 0


@dataclass(frozen=True)
class ColumnDrift:
    """One column's drift score (normed Wasserstein distance) and whether it reached its threshold."""

    score: float
    drifted: bool


@dataclass(frozen=True)
class DriftResult:
    """The drift audit of the current window against the reference (training) window."""

    drift_share: float
    """Share of the model's features that drifted."""
    drifted: bool
    """True when ``features_drifted`` or ``score_drifted``."""
    features_drifted: bool
    """True when ``drift_share`` reached the share threshold."""
    drifted_features: list[str]
    score_drift: float | None
    """The score's drift distance (log-odds scale); None when no model was given."""
    score_drifted: bool | None
    params: DriftParams
    reference_rows: int
    """Reference rows compared (after subsampling)."""
    reference_rows_total: int
    current_rows: int
    excluded_columns: list[str]
    """Columns of the windows that were never compared (Time, the label, any extra column)."""
    columns: dict[str, ColumnDrift]
    """Feature -> its drift (the score column is not in here)."""
    seconds: float
    snapshot: Any = field(default=None, repr=False, compare=False)
    """Evidently's ``Snapshot`` of the run, for its HTML report."""

    @property
    def n_drifted_features(self) -> int:
        """How many features drifted."""
        return len(self.drifted_features)

    @property
    def n_features(self) -> int:
        """How many features were compared (the public schema's 29, or a feature set's)."""
        return len(self.columns)

    def metrics(self) -> dict[str, float]:
        """Flat numbers for KFP ``Metrics``: drift share, drifted flag (0/1), drifted and compared features, score
        distance."""
        out = {
            "drift_share": float(self.drift_share),
            "drifted": float(self.drifted),
            "n_drifted_features": float(self.n_drifted_features),
            "n_features": float(self.n_features),
        }
        if self.score_drift is not None:
            out["score_drift"] = float(self.score_drift)
        return out

    def column_metrics(self) -> dict[str, float]:
        """``drift_<feature>`` -> the feature's drift score."""
        return {f"drift_{c}": float(v.score) for c, v in self.columns.items()}

    def to_dict(self) -> dict[str, Any]:
        """The ``drift_summary.json`` content (without its ``paths``), as plain JSON."""
        return dict(
            json_safe(
                {
                    "drift_share": self.drift_share,
                    "drifted": self.drifted,
                    "features_drifted": self.features_drifted,
                    "n_drifted_features": self.n_drifted_features,
                    "n_features": self.n_features,
                    "drifted_features": self.drifted_features,
                    "score_drift": self.score_drift,
                    "score_drifted": self.score_drifted,
                    "method": METHOD_DESCRIPTION,
                    "params": asdict(self.params),
                    "reference_rows": self.reference_rows,
                    "reference_rows_total": self.reference_rows_total,
                    "current_rows": self.current_rows,
                    "excluded_columns": self.excluded_columns,
                    "columns": {c: asdict(v) for c, v in self.columns.items()},
                    "seconds": self.seconds,
                }
            )
        )


def _features_of(frame: pd.DataFrame, name: str, features: Sequence[str]) -> pd.DataFrame:
    missing = [c for c in features if c not in frame.columns]
    if missing:
        raise DataValidationError(f"{name} window is missing feature column(s) {missing}")
    if len(frame) < 30:
        raise DataValidationError(f"{name} window has {len(frame)} rows; drift needs at least 30")
    return frame.loc[:, list(features)].astype(np.float64)


def _logit(p: np.ndarray) -> np.ndarray:
    clipped = np.clip(np.asarray(p, dtype=np.float64), 1e-7, 1.0 - 1e-7)
    return np.log(clipped / (1.0 - clipped))


def _sample(frame: pd.DataFrame, rows: int, seed: int) -> pd.DataFrame:
    if len(frame) <= rows:
        return frame
    keep = np.sort(np.random.default_rng(seed).choice(len(frame), size=rows, replace=False))
    return frame.iloc[keep]


def _value_drifts(snapshot_dict: Mapping[str, Any]) -> dict[str, float]:
    """Column -> drift score from an Evidently snapshot dict (ValueDrift metrics)."""
    out: dict[str, float] = {}
    for metric in snapshot_dict.get("metrics", []):
        config = metric.get("config", {})
        if str(config.get("type", "")).endswith("ValueDrift") and "column" in config:
            out[str(config["column"])] = float(metric["value"])
    return out


def run_drift(
    reference: pd.DataFrame,
    current: pd.DataFrame,
    booster: Any | None = None,
    params: DriftParams | None = None,
    feature_names: Sequence[str] = FEATURES,
) -> DriftResult:
    """Compare the current window with the reference (training) window with Evidently.

    Args:
        reference: the training window (any extra columns such as Time, Class or a sensitive attribute are
            ignored; only the model's features are compared).
        current: the current window, or a data set the user passed.
        booster: the model; when given, its score distribution is compared too.
        params: thresholds and sampling.
        feature_names: the model's input columns (the public schema's 29, or a feature set's).

    Raises:
        DataValidationError: a window lacks a feature column or has too few rows.
    """
    params = params or DriftParams()
    started = time.perf_counter()
    ref = _features_of(_sample(reference, params.reference_rows, params.seed), "reference", feature_names)
    cur = _features_of(current, "current", feature_names)

    from evidently import DataDefinition, Dataset, Report
    from evidently.metrics import ValueDrift
    from evidently.presets import DataDriftPreset

    columns = list(feature_names)
    metrics: list[Any] = [
        DataDriftPreset(
            columns=columns,
            num_method=METHOD,
            num_threshold=params.column_threshold,
            drift_share=params.share_threshold,
        )
    ]
    if booster is not None:
        from fraud_detection.boosting import predict_proba

        ref[SCORE_COLUMN] = _logit(predict_proba(booster, ref.loc[:, columns].to_numpy(np.float32)))
        cur[SCORE_COLUMN] = _logit(predict_proba(booster, cur.loc[:, columns].to_numpy(np.float32)))
        metrics.append(ValueDrift(column=SCORE_COLUMN, method=METHOD, threshold=params.score_threshold))
    numeric = list(ref.columns)
    definition = DataDefinition(numerical_columns=numeric)
    snapshot = Report(metrics, include_tests=False).run(
        Dataset.from_pandas(cur, data_definition=definition),
        Dataset.from_pandas(ref, data_definition=definition),
    )
    scores = _value_drifts(snapshot.dict())
    missing = [c for c in columns if c not in scores]
    if missing:
        raise RuntimeError(f"Evidently returned no drift score for {missing}; its output format may have changed")
    per_column = {c: ColumnDrift(score=scores[c], drifted=bool(scores[c] >= params.column_threshold)) for c in columns}
    drifted_features = [c for c in columns if per_column[c].drifted]
    drift_share = len(drifted_features) / len(columns)
    features_drifted = drift_share >= params.share_threshold
    score_value = scores.get(SCORE_COLUMN)
    score_drifted = None if score_value is None else bool(score_value >= params.score_threshold)
    return DriftResult(
        drift_share=drift_share,
        drifted=bool(features_drifted or bool(score_drifted)),
        features_drifted=bool(features_drifted),
        drifted_features=drifted_features,
        score_drift=score_value,
        score_drifted=score_drifted,
        params=params,
        reference_rows=len(ref),
        reference_rows_total=len(reference),
        current_rows=len(cur),
        excluded_columns=sorted({TIME, LABEL} | (set(reference.columns) - set(feature_names))),
        columns=per_column,
        seconds=round(time.perf_counter() - started, 3),
        snapshot=snapshot,
    )


__all__ = ["METHOD", "SCORE_COLUMN", "ColumnDrift", "DriftParams", "DriftResult", "run_drift"]
