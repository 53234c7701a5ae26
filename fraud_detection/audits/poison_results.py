"""What the poison sweep measured: each level's result, the noise the losses are judged against, and the
degradation table.

Noise. Every model of the sweep is scored on the same clean test window, which holds few frauds (about a
hundred on the default data), so its AUPRC moves by a few hundredths with the sample of rows alone. The clean
baseline's level measures that spread: the standard error of its test AUPRC over
:data:`BOOTSTRAP_RESAMPLES` stratified bootstrap resamples of the test window (frauds and legitimate rows
resampled separately, so each resample keeps the window's fraud rate). It costs a few hundred milliseconds:
the scores are sorted once and each resample only re-weights them. An attack's AUPRC loss is reported as a
loss the defence can recover only when it exceeds :data:`NOISE_SES` of those standard errors; below that a
rerun on another sample of rows could show no loss at all, and a share of it ("recovered -146 %") means
nothing.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, fields
from typing import Any, Self

import numpy as np

from fraud_detection.audits.defence import DefenceParams
from fraud_detection.audits.jsonable import json_safe, nan_if_none

ATTACKS: tuple[str, ...] = ("random", "targeted")
"""The attack kinds; ``"none"`` is the clean baseline (level 0)."""

NONE = "none"
"""The kind of the clean baseline: no label is flipped."""

SWEEP_FAMILY = "xgboost"
"""The model family every level retrains, whichever family won the bake-off (retraining the network or the
blend at every level would not fit the run's time budget)."""

BOOTSTRAP_RESAMPLES = 200
"""Bootstrap resamples of the test window behind the clean AUPRC's standard error."""

NOISE_SES = 2.0
"""An AUPRC loss counts (and gets a recovery share) when it exceeds this many standard errors of the clean
AUPRC."""

FALLBACK_NOISE = 0.005
"""The loss threshold for a baseline written without its standard error (results from before it was
measured)."""


def auprc_standard_error(
    y: np.ndarray, scores: np.ndarray, resamples: int = BOOTSTRAP_RESAMPLES, seed: int = 0
) -> float:
    """Standard error of the AUPRC of ``scores`` over stratified bootstrap resamples of the rows.

    Each resample draws the frauds and the legitimate rows separately, with replacement, as many of each as
    there are; the AUPRC is the average precision over distinct score thresholds (scikit-learn's formula),
    computed from resample counts on scores sorted once.
    """
    y_true = np.asarray(y).astype(bool)
    s = np.asarray(scores, dtype=np.float64)
    if y_true.size != s.size:
        raise ValueError(f"labels ({y_true.size}) and scores ({s.size}) differ in length")
    order = np.argsort(-s, kind="stable")
    ranked = y_true[order]
    # the last row of each run of equal scores: a threshold counts all rows scored at least that much
    ends = np.r_[np.flatnonzero(np.diff(s[order])), s.size - 1]
    fraud, legit = np.flatnonzero(ranked), np.flatnonzero(~ranked)
    if fraud.size == 0 or legit.size == 0:
        return float("nan")
    rng = np.random.default_rng([int(seed), 7])
    values = np.empty(resamples)
    for i in range(resamples):
        counts = np.bincount(fraud[rng.integers(fraud.size, size=fraud.size)], minlength=s.size)
        counts += np.bincount(legit[rng.integers(legit.size, size=legit.size)], minlength=s.size)
        caught = np.cumsum(counts * ranked)[ends]
        flagged = np.cumsum(counts)[ends]
        recall_steps = np.diff(caught, prepend=0) / caught[-1]
        precision = np.divide(caught, flagged, out=np.zeros(ends.size), where=flagged > 0)
        values[i] = float(np.sum(recall_steps * precision))
    return float(np.std(values, ddof=1))


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
    def from_dict(cls, data: Mapping[str, Any]) -> Self:
        """Read the dict :meth:`LevelResult.to_dict` wrote (None, a NaN that went through JSON, becomes NaN)."""
        names = [f.name for f in fields(cls)]
        missing = [n for n in names if n not in data]
        if missing:
            raise ValueError(f"poison scores are missing {missing}: {dict(data)!r:.200}")
        values: dict[str, Any] = {n: int(data[n]) if n in _INT_FIELDS else nan_if_none(data[n]) for n in names}
        return cls(**values)


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


_INT_FIELDS = {"best_iteration", "relabelled", "dropped", "flips_undone", "clean_rows_touched"}


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
    auprc_se: float | None = None
    """Bootstrap standard error of ``attacked.auprc`` (:func:`auprc_standard_error`); measured for the clean
    baseline only, where it is the sweep's noise."""

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
        if self.auprc_se is not None:
            out["auprc_se"] = self.auprc_se
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
        auprc_se = data.get("auprc_se")
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
            auprc_se=None if auprc_se is None else float(auprc_se),
        )


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
    """``(defended - attacked) / (clean - attacked)`` AUPRC; None where the loss is within ``auprc_noise``."""
    relabelled: int | None
    dropped: int | None
    auprc_noise: float = FALLBACK_NOISE
    """The loss a recovery share needs: :data:`NOISE_SES` standard errors of the clean AUPRC."""

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

    @property
    def noise(self) -> float:
        """The AUPRC loss below which no recovery share is reported (see :func:`loss_noise`)."""
        return loss_noise(self.baseline)


def clean_baseline(results: Sequence[LevelResult]) -> LevelResult:
    """The first clean baseline among the results (kind ``none`` or level 0).

    Raises:
        ValueError: no result, or no clean baseline among them.
    """
    if not results:
        raise ValueError("the poison sweep needs at least one run_level result")
    baseline = [r for r in results if r.is_baseline]
    if not baseline:
        raise ValueError("the results have no clean baseline (kind 'none' / level 0); add it to the sweep")
    return baseline[0]


def loss_noise(baseline: LevelResult) -> float:
    """:data:`NOISE_SES` bootstrap standard errors of the clean AUPRC (:data:`FALLBACK_NOISE` when unmeasured)."""
    se = baseline.auprc_se
    return FALLBACK_NOISE if se is None or not np.isfinite(se) else NOISE_SES * se


def degradation_table(results: Sequence[LevelResult]) -> list[DegradationRow]:
    """One row per (kind, level): AUPRC and recall attacked vs defended, AUPRC lost and share recovered.

    The clean baseline (level 0) is repeated as the first row of each kind. ``recovered`` is
    ``(defended - attacked) / (clean - attacked)`` AUPRC, reported only where the loss exceeds the noise
    (:func:`loss_noise`).

    Raises:
        ValueError: no result, or no clean baseline among them.
    """
    base = clean_baseline(results)
    clean_auprc = base.attacked.auprc
    noise = loss_noise(base)
    kinds = sorted({r.kind for r in results if r.kind != NONE}) or [NONE]
    rows: list[DegradationRow] = []
    for kind in kinds:
        attacked_levels = [r for r in results if r.kind == kind and r.level > 0]
        for r in [base, *sorted(attacked_levels, key=lambda r: r.level)]:
            lost = clean_auprc - r.attacked.auprc
            defended = r.defended
            d_auprc = None if defended is None else defended.auprc
            recovered = (d_auprc - r.attacked.auprc) / lost if d_auprc is not None and lost > noise else None
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
                    auprc_noise=noise,
                )
            )
    return rows


def summary_metrics(rows: Sequence[DegradationRow]) -> dict[str, float]:
    """Flat numbers: clean AUPRC, the loss noise and, per attack at its highest level, AUPRC, recall, defended
    AUPRC and recovery (when the loss exceeds the noise)."""
    metrics: dict[str, float] = {}
    if not rows:
        return metrics
    metrics["clean_auprc"] = float(rows[0].auprc)
    metrics["auprc_noise"] = float(rows[0].auprc_noise)
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


__all__ = [
    "ATTACKS",
    "BOOTSTRAP_RESAMPLES",
    "NOISE_SES",
    "NONE",
    "SWEEP_FAMILY",
    "DefendedScores",
    "DegradationRow",
    "LevelResult",
    "ModelScores",
    "PoisonSweep",
    "auprc_standard_error",
    "clean_baseline",
    "degradation_table",
    "loss_noise",
    "summary_metrics",
]
