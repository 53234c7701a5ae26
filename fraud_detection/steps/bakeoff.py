"""The bake-off steps: fit one family (one task per family), then select the winner and log every candidate.

``train_family_step`` (the ``train_family`` task) fits one family on the training window (early stopping and
threshold on validation) and writes its model directory. ``select_step`` (the ``select_model`` task) loads every
family's directory, fits their blend on the validation window, picks the candidate with the best validation
AUPRC (nothing else decides), scores every candidate on the test window for the report, and logs one MLflow run
``train`` with a child run per candidate; the winner's model directory is what promotion and serving receive.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from fraud_detection import data, data_transactions, modeldir, sampling, tracking
from fraud_detection.boosting import TrainParams
from fraud_detection.families import BLEND
from fraud_detection.families.fit import FamilyFit, FitData, fit_blend, fit_family
from fraud_detection.metrics import (
    CONFUSION,
    RANK_SUMMARY,
    TEST,
    VALIDATION,
    Detail,
    Metric,
    Run,
    evaluate,
    of,
    on,
    on_window,
    roc_points,
)
from fraud_detection.monitoring import reference as monitoring_reference
from fraud_detection.reports.bakeoff import FAMILY, WINNER, bakeoff_markdown
from fraud_detection.steps.measures import card_metrics, reference_metrics
from fraud_detection.steps.selection_run import input_fields, log_selection, params_for_metadata
from fraud_detection.tuning import study

log = logging.getLogger(__name__)


DASK_MAX_TRAIN_ROWS = data.AUDIT_MAX_ROWS
"""``engine=dask``: training rows the families that train in one process (the MLP) read at most: every fraud
and a seeded uniform share of the rest, weighted by its inverse (the audits' bound)."""


VALIDATION_SCORES_FILE = "validation_scores.npy"
"""In a family's candidate model directory: its probabilities on the validation window, which chose its early
stopping round and threshold. The select step reads them instead of scoring the window a second time."""


def train_family_step(
    family: str,
    train_path: Path,
    validation_path: Path,
    params: TrainParams,
    model_dir: Path,
    data_version: str,
    negative_sample_rate: float = 1.0,
    max_train_rows: int | None = None,
) -> dict[str, float]:
    """Fit one family and write its model directory (model version ``candidate``, no MLflow run yet).

    Args:
        negative_sample_rate: below 1, train on every fraud and this share of legitimate rows, each weighted
            by its inverse (:mod:`fraud_detection.sampling`), so the probabilities stay calibrated.
        max_train_rows: read at most about this many training rows: every fraud and a seeded uniform share of
            the rest, weighted by its inverse (:func:`fraud_detection.data.read_xy_weighted`); None = all.

    When the knobs ask for tuning (``tune_trials`` or ``tune_seconds`` above 0), the family is tuned on these
    windows first and fitted with the best values (:func:`fraud_detection.tuning.step.tune_family`).

    Returns its validation metrics (``validation_auprc``, ...), training seconds and family details, with the
    tuning's counts and best values when it tuned.
    """
    w = read_windows(train_path, validation_path, params.seed, negative_sample_rate, max_train_rows)
    if study.tuning_requested(params):
        from fraud_detection.tuning.step import tune_family  # it writes the model through this module

        metrics = tune_family(family, w, params, model_dir, data_version)
    else:
        fitted = fit_family(family, w.x_train, w.y_train, w.x_valid, w.y_valid, params, sample_weight=w.sample_weight)
        y_valid = w.y_valid
        del w  # the training window is not needed to write the model
        metrics = write_family(fitted, y_valid, params, model_dir, data_version)
    record_inputs(Path(model_dir), data_transactions.window_inputs(train_path))
    return metrics


def record_inputs(model_dir: Path, inputs: modeldir.TransactionInputs | None) -> None:
    """Record in a written model directory what a raw-transaction model reads (its mapping and feature set, the
    feature set's names as ``feature_names``), as the training windows recorded them; nothing for the public
    schema."""
    if inputs is None:
        return
    meta = modeldir.read_metadata(model_dir)
    meta = modeldir.ModelMetadata.model_validate({**meta.model_dump(), **input_fields(inputs)})
    (model_dir / modeldir.METADATA_FILE).write_text(meta.model_dump_json(indent=2) + "\n")


def read_windows(
    train_path: Path,
    validation_path: Path,
    seed: int,
    negative_sample_rate: float = 1.0,
    max_train_rows: int | None = None,
) -> FitData:
    """The training window (bounded and downsampled as :func:`train_family_step` describes, with its row weights)
    and the validation window, as a family is fitted on them."""
    x_train, y_train, weights = data.read_xy_weighted(train_path, max_train_rows, seed)
    if negative_sample_rate < 1.0:
        kept, kept_weights = sampling.downsample(y_train, negative_sample_rate, seed)
        x_train, y_train = x_train[kept], y_train[kept]
        weights = kept_weights if weights is None else weights[kept] * kept_weights
    x_valid, y_valid = data.read_xy(validation_path)
    return FitData(x_train, y_train, x_valid, y_valid, weights)


def write_family(
    fitted: FamilyFit, y_valid: np.ndarray, params: TrainParams, model_dir: Path, data_version: str
) -> dict[str, float]:
    """Write a fitted family's model directory (either engine ends here); return its validation metrics,
    training seconds and family details."""
    valid = evaluate(y_valid, fitted.validation_scores, fitted.threshold)
    metrics = on_window(VALIDATION, valid, RANK_SUMMARY)
    metrics |= {Detail.TRAIN_SECONDS.value: fitted.seconds, **fitted.details}
    metadata = modeldir.ModelMetadata(
        model_version="candidate",
        threshold=fitted.threshold,
        data_version=data_version,
        metrics=tracking.finite_metrics(metrics),
        params=params_for_metadata(params),
    )
    modeldir.save_model_dir(fitted.model, metadata, model_dir)
    np.save(Path(model_dir) / VALIDATION_SCORES_FILE, np.asarray(fitted.validation_scores, dtype=np.float64))
    log.info("%s: validation AUPRC %.4f in %.1fs", fitted.family, metrics[on(VALIDATION, Metric.AUPRC)], fitted.seconds)
    return metrics


@dataclass
class Candidate:
    """One bake-off candidate scored on validation (which decides) and test (which is reported)."""

    family: str
    fitted: FamilyFit
    validation: dict[str, float]
    test: dict[str, float]
    test_scores: np.ndarray
    details: dict[str, float] = field(default_factory=dict)


@dataclass
class SelectStepResult:
    """The winner, every candidate's numbers and where the winner's model directory is."""

    winner: str
    metrics: dict[str, float]
    """The winner's ``validation_``/``test_`` metrics, the baseline and oracle, and ``<family>_test_auprc`` etc."""
    bakeoff: list[dict[str, Any]]
    """One row per candidate: family, validation and test AUPRC, train seconds, whether it won."""
    markdown: str
    threshold: float
    mlflow_run_id: str
    roc: tuple[list[float], list[float], list[float]]
    confusion: list[list[int]]


def _load_fit(directory: Path, x_valid: np.ndarray, data_version: str) -> FamilyFit:
    """A family's candidate directory as a fit, with the validation scores it saved when they are for this data
    version's window (its model scores the window again otherwise)."""
    model, meta = modeldir.load_model_dir(directory)
    saved = directory / VALIDATION_SCORES_FILE
    scores = np.load(saved, allow_pickle=False) if saved.is_file() and meta.data_version == data_version else None
    if scores is None or scores.shape != (len(x_valid),):
        scores = model.predict_proba(x_valid)
    return FamilyFit(
        family=meta.family,
        model=model,
        threshold=meta.threshold,
        validation_scores=scores,
        seconds=float(meta.metrics.get(Detail.TRAIN_SECONDS, 0.0)),
        details={
            k: v for k, v in meta.metrics.items() if not k.startswith(f"{VALIDATION}_") and k != Detail.TRAIN_SECONDS
        },
    )


def select_step(
    family_dirs: Sequence[Path],
    train_path: Path,
    validation_path: Path,
    test_path: Path,
    params: TrainParams,
    model_dir: Path,
    tracking_uri: str,
    experiment: str,
    data_version: str,
    oracle_label_noise: float | None = None,
    synthetic_setting: str = "axis",
    dataset: tracking.DatasetInput | None = None,
    card_precision_k: int = 100,
    oracle_test_auprc: float | None = None,
) -> SelectStepResult:
    """Blend the families, pick the winner on validation AUPRC, report all on test, log to MLflow.

    Args:
        family_dirs: each family task's model directory.
        model_dir: where the winner's model directory is written.
        oracle_label_noise: set (to the generator's label noise) when the data is synthetic: the test set's
            best achievable AUPRC is then computed from the true probabilities and reported beside ours.
        synthetic_setting: the generator's setting, for those true probabilities.
        dataset: the whole data set's description, logged as the run's MLflow dataset input (lineage).
        card_precision_k: raw transactions with a card key: cards reviewed a day, for the winner's test card
            precision@k (:func:`fraud_detection.metrics.card_precision_at_k`).
        oracle_test_auprc: generated raw transactions: the true probabilities' test AUPRC, as the load step
            measured it (reported beside ours, as for the public generator).

    Returns:
        The winner's metrics (``validation_``/``test_`` prefixed, ``baseline_lr_test_auprc``,
        ``test_fraud_rate``, for synthetic data ``oracle_test_auprc`` and ``auprc_vs_oracle``, for raw
        transactions with a card key ``test_card_precision_at_k`` and ``card_precision_k``), each
        candidate's ``<family>_validation_auprc`` and ``<family>_test_auprc``, and the bake-off table.
    """
    started = time.perf_counter()
    x_valid, y_valid = data.read_xy(validation_path)
    x_test, y_test = data.read_xy(test_path)
    fits = [_load_fit(Path(d), x_valid, data_version) for d in family_dirs]
    families = [f.family for f in fits]
    if len(set(families)) != len(families):
        raise ValueError(f"each family must be trained once, got {families}")
    if len(fits) >= 2:
        fits.append(fit_blend(fits, x_valid, y_valid, params.threshold_beta))
    candidates = [_score(fitted, y_valid, x_test, y_test) for fitted in fits]
    winner = max(candidates, key=lambda c: c.validation[Metric.AUPRC])
    metrics = selection_metrics(winner, candidates)
    metrics |= reference_metrics(
        train_path,
        x_test,
        y_test,
        params.seed,
        metrics[on(TEST, Metric.AUPRC)],
        oracle_label_noise,
        synthetic_setting,
        oracle_test_auprc,
    )
    metrics |= card_metrics(test_path, y_test, winner.test_scores, card_precision_k)
    inputs = data_transactions.window_inputs(test_path)
    table = bakeoff_rows(candidates, winner)
    markdown = bakeoff_markdown(table, metrics)
    trials = {f.family: study.read_trials(Path(d)) for f, d in zip(fits, family_dirs, strict=False)}
    monitoring_reference.record(model_dir, x_valid, winner.fitted.validation_scores, inputs)
    run_id = log_selection(
        winner,
        candidates,
        metrics,
        markdown,
        params,
        model_dir,
        tracking_uri,
        experiment,
        data_version,
        dataset,
        trials,
        inputs,
    )
    log.info(
        "bake-off: %s; winner %s (test AUPRC %.4f, logistic baseline %.4f%s); step took %.1fs",
        ", ".join(f"{c.family} {c.validation[Metric.AUPRC]:.4f}" for c in candidates),
        winner.family,
        metrics[on(TEST, Metric.AUPRC)],
        metrics[Run.BASELINE_LR_TEST_AUPRC],
        f", best achievable {metrics[Run.ORACLE_TEST_AUPRC]:.4f}" if Run.ORACLE_TEST_AUPRC in metrics else "",
        time.perf_counter() - started,
    )
    tn, fp, fn, tp = (int(winner.test[k]) for k in CONFUSION)
    return SelectStepResult(
        winner=winner.family,
        metrics=metrics,
        bakeoff=table,
        markdown=markdown,
        threshold=winner.fitted.threshold,
        mlflow_run_id=run_id,
        roc=roc_points(y_test, winner.test_scores),
        confusion=[[tn, fp], [fn, tp]],
    )


def _score(fitted: FamilyFit, y_valid: np.ndarray, x_test: np.ndarray, y_test: np.ndarray) -> Candidate:
    """A fitted family as a candidate: its metrics on validation (from its saved scores) and on test."""
    test_scores = fitted.model.predict_proba(x_test)
    return Candidate(
        family=fitted.family,
        fitted=fitted,
        validation=evaluate(y_valid, fitted.validation_scores, fitted.threshold),
        test=evaluate(y_test, test_scores, fitted.threshold),
        test_scores=test_scores,
        details=fitted.details,
    )


def selection_metrics(winner: Candidate, candidates: Sequence[Candidate]) -> dict[str, float]:
    """The winner's test metrics, validation summary, details and training time, then each candidate's
    ``<family>_validation_auprc``, ``<family>_test_auprc`` and ``<family>_<detail>``."""
    metrics = on_window(TEST, winner.test)
    metrics.update(on_window(VALIDATION, winner.validation, RANK_SUMMARY))
    metrics.update(winner.details)
    metrics[Detail.TRAIN_SECONDS.value] = winner.fitted.seconds
    for c in candidates:
        metrics[of(c.family, on(VALIDATION, Metric.AUPRC))] = c.validation[Metric.AUPRC]
        metrics[of(c.family, on(TEST, Metric.AUPRC))] = c.test[Metric.AUPRC]
        metrics[of(c.family, Detail.THRESHOLD)] = c.fitted.threshold
        metrics.update({of(c.family, k): v for k, v in c.details.items()})
    return metrics


def bakeoff_rows(candidates: Sequence[Candidate], winner: Candidate) -> list[dict[str, Any]]:
    """The bake-off table: one row per candidate (the KFP ``bakeoff`` output's ``candidates``)."""
    return [
        {
            FAMILY: c.family,
            on(VALIDATION, Metric.AUPRC): c.validation[Metric.AUPRC],
            on(TEST, Metric.AUPRC): c.test[Metric.AUPRC],
            on(TEST, Metric.ROC_AUC): c.test[Metric.ROC_AUC],
            Detail.TRAIN_SECONDS.value: c.fitted.seconds,
            WINNER: c is winner,
        }
        for c in candidates
    ]


def train_step(
    train_path: Path,
    validation_path: Path,
    test_path: Path,
    params: TrainParams,
    model_dir: Path,
    *select_args: Any,
    negative_sample_rate: float = 1.0,
    **select_options: Any,
) -> SelectStepResult:
    """Every family of ``params.families`` in this process (tuned first when the knobs ask), then
    :func:`select_step` (tests, notebooks).

    ``select_args`` and ``select_options`` are :func:`select_step`'s remaining arguments (tracking URI,
    experiment, data version, ...), passed on as given; the families are trained under the same data version.
    """
    import inspect
    import tempfile

    bound = inspect.signature(select_step).bind(
        [], train_path, validation_path, test_path, params, model_dir, *select_args, **select_options
    )
    data_version = bound.arguments["data_version"]
    with tempfile.TemporaryDirectory(prefix="fraud-families-") as folder:
        dirs = []
        for family in params.families:
            target = Path(folder) / family
            train_family_step(family, train_path, validation_path, params, target, data_version, negative_sample_rate)
            dirs.append(target)
        return select_step(
            dirs, train_path, validation_path, test_path, params, model_dir, *select_args, **select_options
        )


__all__ = ["BLEND", "SelectStepResult", "select_step", "train_family_step", "train_step", "write_family"]
