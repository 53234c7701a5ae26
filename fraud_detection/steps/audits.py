"""The audit steps: poison sweep (per level, then collected), drift and fairness.

Each step reads its inputs, computes the audit (:mod:`fraud_detection.audits`), renders its files
(:mod:`fraud_detection.reports`) and logs one MLflow run with :func:`fraud_detection.tracking.log_run`; it
returns a typed result with the metrics, the paths it wrote and the MLflow run id.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any, Generic, TypeVar

from fraud_detection import boosting, data, data_transactions, modeldir, tracking
from fraud_detection.audits.drift import DriftResult
from fraud_detection.audits.fairness import FairnessResult
from fraud_detection.audits.poison_results import SWEEP_FAMILY, DegradationRow, LevelResult, PoisonSweep
from fraud_detection.reports.drift import DriftFiles
from fraud_detection.reports.fairness import FairnessFiles
from fraud_detection.reports.poison import PoisonFiles

log = logging.getLogger(__name__)

Result = TypeVar("Result")
Files = TypeVar("Files")


@dataclass(frozen=True)
class AuditStepResult(Generic[Result, Files]):
    """What an audit step computed, wrote and logged."""

    result: Result
    """The audit's typed result."""
    files: Files
    """The report files it rendered."""
    metrics: dict[str, float]
    """Flat numbers for KFP ``Metrics`` (the same as the MLflow run's)."""
    mlflow_run_id: str
    """The MLflow run's id (the parent run's, for the poison sweep)."""


def audit_record(
    audit: str,
    files: Any,
    metrics: Mapping[str, Any],
    params: Mapping[str, Any] | None = None,
    tags: Mapping[str, str] | None = None,
    children: Sequence[tracking.RunRecord] = (),
    name: str = "",
) -> tracking.RunRecord:
    """The MLflow run of one audit (named ``name`` or after the audit), tagged with the audit, its report files
    under a folder of the audit's name."""
    return tracking.RunRecord(
        name=name or audit,
        tags={"audit": audit, **(tags or {})},
        params=params or {},
        metrics=metrics,
        artifacts=files.paths(),
        artifact_path=audit,
        children=children,
    )


def _candidate_params(model_dir: Path) -> tuple[boosting.TrainParams, int | None]:
    """The run's XGBoost knobs and the XGBoost family's best round, from the candidate's metadata.

    The poison sweep retrains XGBoost (:data:`~fraud_detection.audits.poison_results.SWEEP_FAMILY`) at every
    level whatever family won the bake-off; its report and the run summary say so.
    """
    meta = modeldir.read_metadata(model_dir)
    known = set(boosting.TrainParams.model_fields)
    params = boosting.TrainParams.model_validate({k: v for k, v in meta.params.items() if k in known})
    best = meta.metrics.get("xgboost_best_iteration", meta.metrics.get("best_iteration"))
    return params, int(best) if best is not None else None


def poison_level_step(
    train_path: Path,
    validation_path: Path,
    test_path: Path,
    model_dir: Path,
    level: float,
    kinds: list[str],
    seed: int,
) -> list[LevelResult]:
    """Every attack kind at one poisoning level (the clean baseline at level 0), with the candidate's knobs."""
    from fraud_detection.audits import poison

    champion_params, best = _candidate_params(model_dir)
    # One thread per level task: levels run side by side (pods on a cluster, two at a time under kfp.local),
    # and XGBoost threads competing for the same cores cost far more than they give.
    params = poison.sweep_params(champion_params, best).model_copy(update={"nthread": 1})
    bound = data.AUDIT_MAX_ROWS
    x_train, y_train = data.read_xy(train_path, bound, seed)
    x_valid, y_valid = data.read_xy(validation_path, bound, seed)
    x_test, y_test = data.read_xy(test_path, bound, seed)
    kinds_here = [poison.NONE] if level == 0 else list(kinds)
    results = []
    for kind in kinds_here:
        started = time.perf_counter()
        results.append(poison.run_level(x_train, y_train, x_valid, y_valid, x_test, y_test, kind, level, params, seed))
        log.info("poison %s at %.0f%%: %.1fs", kind, 100 * level, time.perf_counter() - started)
    return results


def robust_auprc(table: Sequence[DegradationRow], level: float) -> float | None:
    """The worst attacked AUPRC at ``level`` across attack kinds (None when the sweep did not include it)."""
    at_level = [r.auprc for r in table if abs(r.level_pct - 100 * level) < 1e-9 and level > 0]
    return min(at_level) if at_level else None


def robust_fraction(table: Sequence[DegradationRow], level: float) -> float | None:
    """The share of the clean AUPRC that the worst attack at ``level`` leaves (None when not measured).

    Both numbers come from the sweep itself (the same family retrained on clean and on poisoned labels), so
    the share describes how much the labels can be trusted to carry the model, not how separable the data is.
    """
    attacked = robust_auprc(table, level)
    clean = [r.auprc for r in table if r.level_pct == 0]
    if attacked is None or not clean or clean[0] <= 0:
        return None
    return attacked / clean[0]


@dataclass(frozen=True)
class PoisonStepResult(AuditStepResult[PoisonSweep, PoisonFiles]):
    """What the poison-collect step computed, wrote and logged."""

    markdown: str
    """The degradation table as markdown."""
    robust_auprc: float | None
    """The worst attacked AUPRC at the robustness level; None when the sweep did not include it."""
    robust_fraction: float | None
    """That AUPRC as a share of the sweep's clean AUPRC (what the robustness gate judges)."""

    @property
    def sweep(self) -> PoisonSweep:
        """Every level's result and the degradation table."""
        return self.result


def poison_record(sweep: PoisonSweep, files: PoisonFiles, data_version: str) -> tracking.RunRecord:
    """The MLflow parent run ``poison-sweep`` (metrics, report files) with a child run per level result."""
    children = []
    for r in sweep.results:
        values: dict[str, Any] = {f"attacked_{k}": v for k, v in asdict(r.attacked).items()}
        values["flipped"] = r.flipped
        if r.defended is not None:
            values |= {f"defended_{k}": v for k, v in asdict(r.defended).items()}
        children.append(
            tracking.RunRecord(
                name=f"poison-{r.kind}-{100 * r.level:g}pct",
                tags={"audit": "poison"},
                params={"kind": r.kind, "level": r.level, "seed": r.seed},
                metrics=values,
            )
        )
    tags = {"data_version": data_version, "family": SWEEP_FAMILY}
    return audit_record("poison", files, sweep.metrics, tags=tags, children=children, name="poison-sweep")


def poison_collect_step(
    results: Sequence[LevelResult | Mapping[str, Any]],
    out_dir: Path,
    robustness_level: float,
    tracking_uri: str,
    experiment: str,
    data_version: str,
) -> PoisonStepResult:
    """Build the sweep report, log it to MLflow (a parent run, a child per level), find the gate's AUPRC.

    Args:
        results: every level task's results, typed or as the dicts of their JSON output.
        out_dir: where the report files go.
        robustness_level: the poisoning level the robustness gate is measured at.
    """
    from fraud_detection.audits import poison
    from fraud_detection.reports import poison as render

    levels = [r if isinstance(r, LevelResult) else LevelResult.from_dict(r) for r in results]
    sweep = poison.summarise(levels)
    files = render.render_poison(sweep, out_dir)
    run_id = tracking.log_run(poison_record(sweep, files, data_version), tracking_uri, experiment)
    return PoisonStepResult(
        result=sweep,
        files=files,
        metrics=sweep.metrics,
        markdown=render.markdown(sweep),
        robust_auprc=robust_auprc(sweep.table, robustness_level),
        robust_fraction=robust_fraction(sweep.table, robustness_level),
        mlflow_run_id=run_id,
    )


class DriftStepResult(AuditStepResult[DriftResult, DriftFiles]):
    """What the drift step computed, wrote and logged (``metrics``: :meth:`DriftResult.metrics`)."""

    @property
    def drift_share(self) -> float:
        """Share of the model's features that drifted."""
        return self.result.drift_share

    @property
    def drifted(self) -> bool:
        """True when the features or the score drifted."""
        return self.result.drifted


def drift_record(result: DriftResult, files: DriftFiles) -> tracking.RunRecord:
    """The MLflow run ``drift``: headline numbers, one ``drift_<feature>`` per feature, thresholds, files."""
    return audit_record("drift", files, {**result.metrics(), **result.column_metrics()}, asdict(result.params))


def drift_step(
    reference_path: Path,
    current_path: Path,
    drift_data_uri: str,
    sensitive_column: str,
    model_dir: Path,
    out_dir: Path,
    tracking_uri: str,
    experiment: str,
) -> DriftStepResult:
    """Evidently drift between the training window and the current window (or ``drift_data_uri``)."""
    from fraud_detection.audits import drift
    from fraud_detection.reports.drift import render_drift

    booster, meta = modeldir.load_model_dir(model_dir)
    reference = data.read_window(reference_path, max_rows=data.AUDIT_MAX_ROWS)
    if drift_data_uri and meta.transactions is not None:
        current = data_transactions.read_featured(drift_data_uri, meta.transactions, sensitive_column)
    elif drift_data_uri:
        current = data.load_dataset(drift_data_uri, sensitive_column).frame
    else:
        current = data.read_window(current_path, max_rows=data.AUDIT_MAX_ROWS)
    result = drift.run_drift(reference, current, booster=booster, feature_names=meta.feature_names)
    log.info(
        "drift: %d/%d features drifted (share %.3f), score drift %s -> drifted=%s in %.1fs",
        result.n_drifted_features,
        result.n_features,
        result.drift_share,
        "n/a" if result.score_drift is None else f"{result.score_drift:.3f}",
        result.drifted,
        result.seconds,
    )
    files = render_drift(result, out_dir)
    run_id = tracking.log_run(drift_record(result, files), tracking_uri, experiment)
    return DriftStepResult(result=result, files=files, metrics=result.metrics(), mlflow_run_id=run_id)


class FairnessStepResult(AuditStepResult[FairnessResult, FairnessFiles]):
    """What the fairness step computed, wrote and logged (``metrics``: :meth:`FairnessResult.metrics`)."""

    @property
    def equalized_odds_difference(self) -> float | None:
        """The fairness gate's number; None when not measurable."""
        return self.result.equalized_odds_difference

    @property
    def note(self) -> str:
        """What was audited, or why fairness was not."""
        return self.result.note


def fairness_record(result: FairnessResult, files: FairnessFiles, family: str = "xgboost") -> tracking.RunRecord:
    """The MLflow run ``fairness``: metrics, the audited column, the note and the audited family as tags, the
    report files."""
    return audit_record(
        "fairness",
        files,
        result.metrics(),
        {"sensitive_column": result.sensitive_column or "(none)"},
        {"fairness_note": result.note[:5000], "family": family},
    )


def fairness_step(
    test_path: Path,
    model_dir: Path,
    sensitive_column: str,
    out_dir: Path,
    tracking_uri: str,
    experiment: str,
) -> FairnessStepResult:
    """Fairlearn group metrics and explanations of the candidate (the bake-off's winner, any family) on the test
    window, logged to MLflow."""
    from fraud_detection.audits import fairness
    from fraud_detection.reports.fairness import render_fairness

    booster, meta = modeldir.load_model_dir(model_dir)
    test = data.read_window(test_path, max_rows=data.AUDIT_MAX_ROWS)
    result = fairness.run_fairness(test, booster, meta.threshold, sensitive_column, feature_names=meta.feature_names)
    log.info(
        "fairness of the %s candidate: %s; top feature %s; %.1fs",
        meta.family,
        result.note,
        next(iter(result.shap.importance)),
        result.seconds,
    )
    files = render_fairness(result, out_dir)
    run_id = tracking.log_run(fairness_record(result, files, meta.family), tracking_uri, experiment)
    return FairnessStepResult(result=result, files=files, metrics=result.metrics(), mlflow_run_id=run_id)
