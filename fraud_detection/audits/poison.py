"""Label-flip poisoning sweep: how much an attacker who can flip training labels hurts us, and a defence.

Threat model. The attacker can change labels in the *training window* only (for example by disputing or
suppressing chargebacks). The validation and test windows are the trusted, audited labels: validation is
used for early stopping and the decision threshold, test for scoring. Features are never touched.

Attacks (``kind``), each at a ``level`` in [0, 1):

``random``
    Stratified random flips: the same share ``level`` of each class is flipped (fraud -> legitimate and
    legitimate -> fraud). Flips are a seeded permutation per class, so a level's flips are a superset of
    every lower level's for the same seed.
``targeted``
    The attacker hides fraud: ``level`` is the share of fraud labels flipped to legitimate, and the flipped
    frauds are the ones nearest (in standardised feature space) to one seeded *anchor* fraud, i.e. the
    attacker erases one modus operandi rather than random frauds. Nearest-first order makes levels nested.

Defence: the training labels are sanitised against a model trained on the trusted validation labels only,
then the model is retrained (:mod:`fraud_detection.audits.defence` says how and why).

One level is one call to :func:`run_level` (a pipeline task per level), and :func:`summarise` turns all the
levels' results into the degradation table (:mod:`fraud_detection.audits.poison_results` holds the records, the
table and how its noise is measured; :mod:`fraud_detection.reports.poison` renders it).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Sequence
from dataclasses import fields
from typing import Any

import numpy as np

from fraud_detection.audits.defence import DefenceParams, sanitise, train_sanitiser
from fraud_detection.audits.poison_results import (
    ATTACKS,
    NONE,
    DefendedScores,
    LevelResult,
    ModelScores,
    PoisonSweep,
    auprc_standard_error,
    clean_baseline,
    degradation_table,
    summary_metrics,
)
from fraud_detection.boosting import TrainParams, predict_proba, train_booster
from fraud_detection.metrics import evaluate

log = logging.getLogger(__name__)

_KIND_SEED = {"random": 1, "targeted": 2, NONE: 0}


def sweep_params(champion: TrainParams, best_iteration: int | None = None) -> TrainParams:
    """The champion's hyper-parameters for the sweep's retrainings, with rounds capped at the champion's own.

    Every level then differs from the clean baseline only by its labels, and a noisy-label model cannot
    run to ``n_rounds`` without early stopping (which would cost minutes on 2 cores and grow trees on noise).
    """
    if best_iteration is None:
        return champion
    if best_iteration < 0:
        raise ValueError(f"best_iteration must be >= 0, got {best_iteration}")
    return champion.model_copy(update={"n_rounds": min(champion.n_rounds, best_iteration + 1)})


def _check_kind(kind: str) -> str:
    if kind not in (*ATTACKS, NONE):
        raise ValueError(f"unknown attack kind {kind!r}; expected one of {[*ATTACKS, NONE]}")
    return kind


def _check_level(level: float) -> float:
    level = float(level)
    if not 0.0 <= level < 1.0 or math.isnan(level):
        raise ValueError(f"poison level must be a share within [0, 1), got {level}")
    return level


def _rng(seed: int, kind: str) -> np.random.Generator:
    return np.random.default_rng([int(seed), _KIND_SEED[kind]])


def flip_indices(x: np.ndarray, y: np.ndarray, kind: str, level: float, seed: int = 0) -> np.ndarray:
    """Row indices whose labels the attacker flips (sorted, int64).

    Args:
        x: training features (used by the targeted attack to find the frauds nearest its anchor).
        y: clean 0/1 training labels.
        kind: ``"random"``, ``"targeted"`` or ``"none"``.
        level: share of each class (random) or of the fraud class (targeted) to flip, within [0, 1).
        seed: the same seed gives the same flips, and a higher level's flips contain a lower level's.
    """
    _check_kind(kind)
    level = _check_level(level)
    y = np.asarray(y)
    if x.shape[0] != y.shape[0]:
        raise ValueError(f"x has {x.shape[0]} rows but y has {y.shape[0]}")
    if kind == NONE or level == 0.0:
        return np.empty(0, dtype=np.int64)
    rng = _rng(seed, kind)
    fraud = np.flatnonzero(y == 1)
    legit = np.flatnonzero(y == 0)
    if fraud.size == 0:
        raise ValueError("the training labels contain no fraud; there is nothing to attack")
    if kind == "random":
        # Draw both permutations regardless of level so that the order (and thus nesting) never depends on it.
        fraud_order = rng.permutation(fraud)
        legit_order = rng.permutation(legit)
        chosen = np.concatenate([fraud_order[: round(level * fraud.size)], legit_order[: round(level * legit.size)]])
    else:
        anchor = fraud[rng.integers(fraud.size)]
        scale = x.std(axis=0)
        scale[scale == 0] = 1.0
        distance = np.linalg.norm((x[fraud] - x[anchor]) / scale, axis=1)
        order = fraud[np.lexsort((fraud, distance))]
        chosen = order[: round(level * fraud.size)]
    return np.sort(chosen.astype(np.int64))


def poison_labels(x: np.ndarray, y: np.ndarray, kind: str, level: float, seed: int = 0) -> np.ndarray:
    """A copy of ``y`` with the attacker's flips applied (see :func:`flip_indices`)."""
    poisoned = np.asarray(y).astype(np.int32, copy=True)
    idx = flip_indices(x, y, kind, level, seed)
    poisoned[idx] = 1 - poisoned[idx]
    return poisoned


def _scores(booster: Any, threshold: float, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
    metrics = evaluate(y_test, predict_proba(booster, x_test), threshold)
    names = [f.name for f in fields(ModelScores) if f.name != "best_iteration"]
    return {name: float(metrics[name]) for name in names}


def run_level(
    x_train: np.ndarray,
    y_train: np.ndarray,
    x_valid: np.ndarray,
    y_valid: np.ndarray,
    x_test: np.ndarray,
    y_test: np.ndarray,
    kind: str,
    level: float,
    params: TrainParams | None = None,
    seed: int = 0,
    defend: bool = True,
    defence: DefenceParams | None = None,
) -> LevelResult:
    """Attack the training labels at one level, retrain, score on the clean test set, then defend and retrain.

    Args:
        x_train, y_train: the clean training window (features float32 in FEATURES order, 0/1 labels).
        x_valid, y_valid: the trusted validation window (early stopping and threshold).
        x_test, y_test: the clean test window every model is scored on.
        kind: ``"random"``, ``"targeted"`` or ``"none"`` (clean baseline).
        level: share flipped, within [0, 1).
        params: the champion's hyper-parameters.
        seed: attack seed (same seed, same flips).
        defend: also run the sanitisation defence and score the retrained model.
        defence: defence knobs.

    Returns:
        The flip counts, the attacked model's scores, the defended model's (or None) with what the defence
        changed, and timings.
    """
    params = params or TrainParams()
    started = time.perf_counter()
    y_train = np.asarray(y_train).astype(np.int32)
    flipped = flip_indices(x_train, y_train, kind, level, seed)
    poisoned = y_train.copy()
    poisoned[flipped] = 1 - poisoned[flipped]
    if int(poisoned.sum()) == 0:
        raise ValueError(f"{kind} attack at level {level} leaves no fraud label in the training set")
    trained = train_booster(x_train, poisoned, x_valid, y_valid, params, log_every=0)
    attacked = ModelScores(
        **_scores(trained.booster, trained.threshold, x_test, y_test), best_iteration=trained.best_iteration
    )
    # The clean baseline also measures the sweep's noise: how much its test AUPRC moves with the test rows.
    baseline = kind == NONE or level == 0.0
    auprc_se = auprc_standard_error(y_test, predict_proba(trained.booster, x_test), seed=seed) if baseline else None
    attack_seconds = round(time.perf_counter() - started, 3)
    defended = None
    defence_seconds = None
    if defend:
        defence = defence or DefenceParams()
        t0 = time.perf_counter()
        sanitiser, sanitiser_threshold = train_sanitiser(x_valid, y_valid, params, defence, seed)
        clean = sanitise(x_train, poisoned, sanitiser, sanitiser_threshold, defence)
        kept_labels = clean.labels[clean.keep]
        retrained = train_booster(x_train[clean.keep], kept_labels, x_valid, y_valid, params, log_every=0)
        changed = clean.labels != poisoned
        fixed = np.zeros(y_train.size, dtype=bool)
        fixed[flipped] = True
        # Rows whose poisoned label the defence undid (relabelled back, or dropped) vs. clean rows it touched.
        touched = changed | ~clean.keep
        defended = DefendedScores(
            **_scores(retrained.booster, retrained.threshold, x_test, y_test),
            best_iteration=retrained.best_iteration,
            relabelled=clean.relabelled,
            sanitiser_threshold=clean.sanitiser_threshold,
            dropped=clean.dropped,
            flips_undone=int(np.sum(touched & fixed)),
            clean_rows_touched=int(np.sum(touched & ~fixed)),
        )
        defence_seconds = round(time.perf_counter() - t0, 3)
    result = LevelResult(
        kind=kind,
        level=float(level),
        attacked=attacked,
        defended=defended,
        seed=int(seed),
        n_train=int(y_train.size),
        n_fraud_train=int(y_train.sum()),
        flipped=int(flipped.size),
        flipped_fraud_to_legit=int(np.sum(y_train[flipped] == 1)),
        flipped_legit_to_fraud=int(np.sum(y_train[flipped] == 0)),
        attack_seconds=attack_seconds,
        defence_seconds=defence_seconds,
        defence_params=defence if defend else None,
        seconds=round(time.perf_counter() - started, 3),
        auprc_se=auprc_se,
    )
    log.info(
        "poison %s level %.3f: AUPRC %.4f%s in %.1fs",
        kind,
        level,
        attacked.auprc,
        f" -> defended {defended.auprc:.4f}" if defended else "",
        result.seconds,
    )
    return result


def summarise(results: Sequence[LevelResult]) -> PoisonSweep:
    """The sweep from all :func:`run_level` results: baseline, degradation table and summary metrics.

    Raises:
        ValueError: no result, or no clean baseline among them.
    """
    rows = degradation_table(results)
    return PoisonSweep(
        results=tuple(results), baseline=clean_baseline(results), table=tuple(rows), metrics=summary_metrics(rows)
    )


__all__ = ["ATTACKS", "NONE", "flip_indices", "poison_labels", "run_level", "summarise", "sweep_params"]
