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

Defence: training-set sanitisation against a model trained on trusted labels only. The validation window's
labels are trusted (they already drive early stopping and the threshold), so a *sanitiser* model with the
champion's hyper-parameters is trained on a seeded stratified half of it (early-stopped on the other half).
It never sees a poisoned label, so its opinion of a training row does not depend on the attack. With
``t`` its own F1-optimal threshold, a training row labelled legitimate that it scores at least
``relabel_factor * t`` is relabelled fraud, and a row labelled fraud is dropped when the sanitiser scores it
below ``drop_factor * t`` *and* the row looks ordinary (every feature within ``typical_sd`` robust standard
deviations of the median; Amount on a log scale). The second condition matters: a sanitiser trained on a
few dozen trusted frauds misses some genuine fraud patterns, and dropping those rows would erase the
pattern (we measured a 0.14 AUPRC loss on clean data without it), whereas genuine fraud is, almost by
definition, unusual in some feature while a legitimate row whose label was flipped is not. The model is
then retrained (same hyper-parameters) on the sanitised set.

Why not out-of-fold sanitisation on the training set itself (confident learning)? We measured it on the
default data: fold models trained on poisoned labels learn the flips and score flipped and genuine rows
alike (at 20 % random flips the defended AUPRC was 0.68 against 0.69 attacked), and with a targeted attack
the hidden pattern is hidden from the fold models too. A sanitiser trained on trusted labels has neither
problem, and costs one small training instead of k.

One level is one call to :func:`run_level` (a pipeline task per level), and :func:`summarise` turns all the
levels' results into the degradation table (:mod:`fraud_detection.reports.poison` renders it).
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields, replace
from typing import Any

import numpy as np

from fraud_detection.audits.jsonable import json_safe, nan_if_none
from fraud_detection.boosting import TrainParams, predict_proba, train_booster
from fraud_detection.metrics import evaluate

log = logging.getLogger(__name__)

ATTACKS: tuple[str, ...] = ("random", "targeted")
"""The attack kinds; ``"none"`` is the clean baseline (level 0)."""

NONE = "none"
"""The kind of the clean baseline: no label is flipped."""

_KIND_SEED = {"random": 1, "targeted": 2, NONE: 0}


@dataclass(frozen=True)
class DefenceParams:
    """Knobs of the trusted-sanitiser defence (thresholds are multiples of the sanitiser's own threshold)."""

    relabel_factor: float = 3.0
    """A row labelled legitimate is relabelled fraud when the sanitiser scores it >= relabel_factor * t."""
    drop_factor: float = 0.3
    """A row labelled fraud is dropped when the sanitiser scores it < drop_factor * t."""
    trusted_share: float = 0.5
    """Share of the trusted (validation) window the sanitiser trains on; the rest early-stops it."""
    typical_sd: float = 4.0
    """A fraud label is only dropped on a row whose features all lie within this many robust SDs."""

    def __post_init__(self) -> None:
        if not 0.0 <= self.drop_factor < self.relabel_factor:
            raise ValueError(
                f"need 0 <= drop_factor < relabel_factor, got drop_factor={self.drop_factor}, "
                f"relabel_factor={self.relabel_factor}"
            )
        if self.typical_sd <= 0:
            raise ValueError(f"typical_sd must be positive, got {self.typical_sd}")
        if not 0.0 < self.trusted_share < 1.0:
            raise ValueError(f"trusted_share must be within (0, 1), got {self.trusted_share}")


def sweep_params(champion: TrainParams, best_iteration: int | None = None) -> TrainParams:
    """The champion's hyper-parameters for the sweep's retrainings, with rounds capped at the champion's own.

    Every level then differs from the clean baseline only by its labels, and a noisy-label model cannot
    run to ``n_rounds`` without early stopping (which would cost minutes on 2 cores and grow trees on noise).
    """
    if best_iteration is None:
        return champion
    if best_iteration < 0:
        raise ValueError(f"best_iteration must be >= 0, got {best_iteration}")
    return replace(champion, n_rounds=min(champion.n_rounds, best_iteration + 1))


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


@dataclass
class Sanitised:
    """The outcome of the sanitisation defence on one training set."""

    keep: np.ndarray
    """Boolean mask of training rows kept."""
    labels: np.ndarray
    """Labels after relabelling (length = all rows; use with ``keep``)."""
    relabelled: int
    """Rows labelled legitimate that were relabelled fraud."""
    dropped: int
    """Rows labelled fraud that were dropped."""
    sanitiser_threshold: float
    """The sanitiser's own F1-optimal threshold ``t``."""


def _stratified_split(y: np.ndarray, share: float, rng: np.random.Generator) -> np.ndarray:
    """Boolean mask selecting ``share`` of each class."""
    mask = np.zeros(y.size, dtype=bool)
    for cls in (0, 1):
        rows = rng.permutation(np.flatnonzero(y == cls))
        mask[rows[: round(share * rows.size)]] = True
    return mask


def train_sanitiser(
    x_trusted: np.ndarray,
    y_trusted: np.ndarray,
    params: TrainParams,
    defence: DefenceParams | None = None,
    seed: int = 0,
) -> tuple[Any, float]:
    """Train the sanitiser on trusted labels: (booster, its F1-optimal threshold on the held-out trusted half).

    Raises:
        ValueError: either half of the trusted window has no fraud label.
    """
    defence = defence or DefenceParams()
    y_trusted = np.asarray(y_trusted).astype(np.int32)
    part = _stratified_split(y_trusted, defence.trusted_share, np.random.default_rng([int(seed), 99]))
    for name, mask in (("training", part), ("stopping", ~part)):
        if int(y_trusted[mask].sum()) == 0:
            raise ValueError(
                f"the sanitiser's {name} half of the trusted window has no fraud label "
                f"({int(y_trusted.sum())} frauds in the whole window); use more data or disable the defence"
            )
    result = train_booster(x_trusted[part], y_trusted[part], x_trusted[~part], y_trusted[~part], params, log_every=0)
    return result.booster, float(result.threshold)


def atypicality(x: np.ndarray) -> np.ndarray:
    """Per row, the largest distance of any feature from its median in robust SDs (MAD * 1.4826).

    The last column (Amount) is compared on a ``log1p`` scale, as amounts are heavy-tailed.
    """
    values = np.asarray(x, dtype=np.float64).copy()
    values[:, -1] = np.log1p(np.maximum(values[:, -1], 0.0))
    centre = np.median(values, axis=0)
    spread = np.median(np.abs(values - centre), axis=0) * 1.4826
    spread[spread == 0] = 1.0
    return np.asarray(np.abs((values - centre) / spread).max(axis=1))


def sanitise(
    x_train: np.ndarray,
    y_train: np.ndarray,
    sanitiser: Any,
    threshold: float,
    defence: DefenceParams | None = None,
) -> Sanitised:
    """Relabel / drop training rows whose label strongly disagrees with the trusted sanitiser.

    Args:
        x_train, y_train: the (possibly poisoned) training set.
        sanitiser, threshold: from :func:`train_sanitiser`.
        defence: the relabel / drop factors.
    """
    defence = defence or DefenceParams()
    y_train = np.asarray(y_train).astype(np.int32)
    scores = predict_proba(sanitiser, x_train)
    relabel = (y_train == 0) & (scores >= defence.relabel_factor * threshold)
    drop = (y_train == 1) & (scores < defence.drop_factor * threshold) & (atypicality(x_train) < defence.typical_sd)
    labels = y_train.copy()
    labels[relabel] = 1
    return Sanitised(
        keep=~drop,
        labels=labels,
        relabelled=int(relabel.sum()),
        dropped=int(drop.sum()),
        sanitiser_threshold=threshold,
    )


@dataclass(frozen=True)
class ModelScores:
    """One retrained model scored on the clean test window (at its own validation-chosen threshold)."""

    auprc: float
    roc_auc: float
    recall: float
    precision: float
    f1: float
    recall_at_precision_90: float
    threshold: float
    best_iteration: int

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> ModelScores:
        """Read the dict :meth:`LevelResult.to_dict` wrote (None, a NaN that went through JSON, becomes NaN)."""
        return cls(**_score_fields(cls, data))


@dataclass(frozen=True)
class DefendedScores(ModelScores):
    """The model retrained on the sanitised training set, and what the defence changed."""

    relabelled: int
    """Training rows labelled legitimate that the defence relabelled fraud."""
    sanitiser_threshold: float
    """The sanitiser's own threshold ``t``."""
    dropped: int
    """Training rows labelled fraud that the defence dropped."""
    flips_undone: int
    """Attacked rows the defence relabelled or dropped."""
    clean_rows_touched: int
    """Rows the attacker did not touch that the defence relabelled or dropped anyway."""

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> DefendedScores:
        """Read the dict :meth:`LevelResult.to_dict` wrote."""
        return cls(**_score_fields(cls, data))


_INT_FIELDS = {"best_iteration", "relabelled", "dropped", "flips_undone", "clean_rows_touched"}


def _score_fields(cls: type, data: Mapping[str, Any]) -> dict[str, Any]:
    names = [f.name for f in fields(cls)]
    missing = [n for n in names if n not in data]
    if missing:
        raise ValueError(f"poison scores are missing {missing}: {dict(data)!r:.200}")
    return {n: int(data[n]) if n in _INT_FIELDS else nan_if_none(data[n]) for n in names}


@dataclass(frozen=True)
class LevelResult:
    """One attack kind at one level: the attacked model and (when the defence ran) the defended one."""

    kind: str
    """``"random"``, ``"targeted"`` or ``"none"`` (the clean baseline)."""
    level: float
    """Share flipped, within [0, 1)."""
    attacked: ModelScores
    """The model retrained on the poisoned labels."""
    defended: DefendedScores | None = None
    """The model retrained after the defence; None when it did not run."""
    seed: int = 0
    n_train: int = 0
    """Training rows."""
    n_fraud_train: int = 0
    """Clean fraud labels in the training window."""
    flipped: int = 0
    """Labels the attacker flipped."""
    flipped_fraud_to_legit: int = 0
    flipped_legit_to_fraud: int = 0
    attack_seconds: float = 0.0
    defence_seconds: float | None = None
    defence_params: DefenceParams | None = None
    seconds: float = 0.0
    """Wall time of the whole level."""

    @property
    def is_baseline(self) -> bool:
        """True for the clean baseline (kind ``none`` or level 0)."""
        return self.kind == NONE or self.level == 0.0

    def to_dict(self) -> dict[str, Any]:
        """A plain-JSON dict (NaN as None); the defence keys are present only when the defence ran."""
        out: dict[str, Any] = {
            "kind": self.kind,
            "level": self.level,
            "seed": self.seed,
            "n_train": self.n_train,
            "n_fraud_train": self.n_fraud_train,
            "flipped": self.flipped,
            "flipped_fraud_to_legit": self.flipped_fraud_to_legit,
            "flipped_legit_to_fraud": self.flipped_legit_to_fraud,
            "attacked": asdict(self.attacked),
            "defended": None if self.defended is None else asdict(self.defended),
            "attack_seconds": self.attack_seconds,
        }
        if self.defence_seconds is not None:
            out["defence_seconds"] = self.defence_seconds
        if self.defence_params is not None:
            out["defence_params"] = asdict(self.defence_params)
        out["seconds"] = self.seconds
        return dict(json_safe(out))

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> LevelResult:
        """Read back :meth:`to_dict` (as it comes out of a pipeline task's JSON output).

        Raises:
            ValueError: ``kind``, ``level`` or ``attacked`` is missing, or a score is.
        """
        missing = {"kind", "level", "attacked"} - set(data)
        if missing:
            raise ValueError(f"a poison result is missing {sorted(missing)}: {dict(data)!r:.200}")
        defended = data.get("defended")
        knobs = data.get("defence_params")
        defence_seconds = data.get("defence_seconds")
        return cls(
            kind=str(data["kind"]),
            level=float(data["level"]),
            attacked=ModelScores.from_dict(data["attacked"]),
            defended=DefendedScores.from_dict(defended) if defended else None,
            seed=int(data.get("seed", 0)),
            n_train=int(data.get("n_train", 0)),
            n_fraud_train=int(data.get("n_fraud_train", 0)),
            flipped=int(data.get("flipped", 0)),
            flipped_fraud_to_legit=int(data.get("flipped_fraud_to_legit", 0)),
            flipped_legit_to_fraud=int(data.get("flipped_legit_to_fraud", 0)),
            attack_seconds=float(data.get("attack_seconds", 0.0)),
            defence_seconds=None if defence_seconds is None else float(defence_seconds),
            defence_params=DefenceParams(**knobs) if knobs else None,
            seconds=float(data.get("seconds", 0.0)),
        )


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


@dataclass(frozen=True)
class DegradationRow:
    """One row of the degradation table: one attack kind at one level, attacked vs defended."""

    kind: str
    level_pct: float
    """The level in percent."""
    flipped: int
    auprc: float
    recall: float
    precision: float
    auprc_defended: float | None
    recall_defended: float | None
    auprc_lost: float
    """Clean AUPRC minus attacked AUPRC."""
    recovered: float | None
    """``(defended - attacked) / (clean - attacked)`` AUPRC; None where the attack lost < 0.005 AUPRC."""
    relabelled: int | None
    dropped: int | None

    def to_dict(self) -> dict[str, Any]:
        """The row as a dict (the ``poison_table.json`` format the run summary reads)."""
        return asdict(self)


@dataclass(frozen=True)
class PoisonSweep:
    """Every level's result and the degradation table built from them."""

    results: tuple[LevelResult, ...]
    baseline: LevelResult
    """The clean baseline (first result of kind ``none`` or level 0)."""
    table: tuple[DegradationRow, ...]
    metrics: dict[str, float]
    """Flat numbers for KFP ``Metrics`` and MLflow (see :func:`summary_metrics`)."""

    @property
    def defended_any(self) -> bool:
        """True when the defence ran at any level."""
        return any(r.defended is not None for r in self.results)


def _baseline(results: Sequence[LevelResult]) -> LevelResult:
    if not results:
        raise ValueError("the poison sweep needs at least one run_level result")
    baseline = [r for r in results if r.is_baseline]
    if not baseline:
        raise ValueError("the results have no clean baseline (kind 'none' / level 0); add it to the sweep")
    return baseline[0]


def degradation_table(results: Sequence[LevelResult]) -> list[DegradationRow]:
    """One row per (kind, level): AUPRC and recall attacked vs defended, AUPRC lost and share recovered.

    The clean baseline (level 0) is repeated as the first row of each kind. ``recovered`` is
    ``(defended - attacked) / (clean - attacked)`` AUPRC, reported only where the attack lost at least
    0.005 AUPRC (below that the ratio is noise).

    Raises:
        ValueError: no result, or no clean baseline among them.
    """
    base = _baseline(results)
    clean_auprc = base.attacked.auprc
    kinds = sorted({r.kind for r in results if r.kind != NONE}) or [NONE]
    rows: list[DegradationRow] = []
    for kind in kinds:
        attacked_levels = [r for r in results if r.kind == kind and r.level > 0]
        for r in [base, *sorted(attacked_levels, key=lambda r: r.level)]:
            lost = clean_auprc - r.attacked.auprc
            defended = r.defended
            d_auprc = None if defended is None else defended.auprc
            recovered = (d_auprc - r.attacked.auprc) / lost if d_auprc is not None and lost >= 0.005 else None
            rows.append(
                DegradationRow(
                    kind=kind,
                    level_pct=round(100 * r.level, 3),
                    flipped=r.flipped,
                    auprc=r.attacked.auprc,
                    recall=r.attacked.recall,
                    precision=r.attacked.precision,
                    auprc_defended=d_auprc,
                    recall_defended=None if defended is None else defended.recall,
                    auprc_lost=lost,
                    recovered=recovered,
                    relabelled=None if defended is None else defended.relabelled,
                    dropped=None if defended is None else defended.dropped,
                )
            )
    return rows


def summary_metrics(rows: Sequence[DegradationRow]) -> dict[str, float]:
    """Flat numbers: clean AUPRC and, per attack at its highest level, AUPRC, recall, defended AUPRC, recovery."""
    metrics: dict[str, float] = {}
    if not rows:
        return metrics
    metrics["clean_auprc"] = float(rows[0].auprc)
    for kind in dict.fromkeys(r.kind for r in rows):
        worst = max((r for r in rows if r.kind == kind), key=lambda r: r.level_pct)
        tag = f"{kind}_{worst.level_pct:g}pct"
        metrics[f"{tag}_auprc"] = float(worst.auprc)
        metrics[f"{tag}_recall"] = float(worst.recall)
        if worst.auprc_defended is not None:
            metrics[f"{tag}_auprc_defended"] = float(worst.auprc_defended)
        if worst.recovered is not None:
            metrics[f"{tag}_recovered"] = float(worst.recovered)
    return metrics


def summarise(results: Sequence[LevelResult]) -> PoisonSweep:
    """The sweep from all :func:`run_level` results: baseline, degradation table and summary metrics.

    Raises:
        ValueError: no result, or no clean baseline among them.
    """
    rows = degradation_table(results)
    return PoisonSweep(
        results=tuple(results), baseline=_baseline(results), table=tuple(rows), metrics=summary_metrics(rows)
    )


__all__ = [
    "ATTACKS",
    "NONE",
    "DefenceParams",
    "DefendedScores",
    "DegradationRow",
    "LevelResult",
    "ModelScores",
    "PoisonSweep",
    "Sanitised",
    "atypicality",
    "degradation_table",
    "flip_indices",
    "poison_labels",
    "run_level",
    "sanitise",
    "summarise",
    "summary_metrics",
    "sweep_params",
    "train_sanitiser",
]
