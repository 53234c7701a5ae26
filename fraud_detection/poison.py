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

One level is one call to :func:`run_level` (a pipeline task per level), and :func:`collect` builds the
report from all results.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Mapping, Sequence
from dataclasses import asdict, dataclass, field, replace
from pathlib import Path
from typing import Any

import numpy as np

from fraud_detection import reports, tracking
from fraud_detection.train import TrainParams, evaluate, predict_proba, train_booster

log = logging.getLogger(__name__)

ATTACKS: tuple[str, ...] = ("random", "targeted")
"""The attack kinds; ``"none"`` is the clean baseline (level 0)."""

NONE = "none"

DEFAULT_LEVELS: tuple[float, ...] = (0.0, 0.01, 0.02, 0.05, 0.10, 0.20)

_KIND_SEED = {"random": 1, "targeted": 2, NONE: 0}
_METRICS = ("auprc", "roc_auc", "recall", "precision", "f1", "recall_at_precision_90", "threshold")


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


def sweep_plan(levels: Sequence[float] = DEFAULT_LEVELS, kinds: Sequence[str] = ATTACKS) -> list[dict[str, Any]]:
    """The list of ``{"kind", "level"}`` tasks to fan out: one clean baseline plus each kind at each level > 0.

    Raises:
        ValueError: a level outside [0, 1), an unknown kind, or no level at all.
    """
    if not levels:
        raise ValueError("the poison sweep needs at least one level")
    for kind in kinds:
        _check_kind(kind)
    clean_levels = sorted({_check_level(level) for level in levels})
    plan: list[dict[str, Any]] = [{"kind": NONE, "level": 0.0}]
    plan += [{"kind": kind, "level": level} for kind in kinds for level in clean_levels if level > 0]
    return plan


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
    dropped: int
    sanitiser_threshold: float
    scores: np.ndarray = field(repr=False)


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
        scores=scores,
    )


def _scores(booster: Any, threshold: float, x_test: np.ndarray, y_test: np.ndarray) -> dict[str, float]:
    metrics = evaluate(y_test, predict_proba(booster, x_test), threshold)
    return {name: float(metrics[name]) for name in _METRICS}


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
) -> dict[str, Any]:
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
        A small JSON-serialisable dict: ``kind``, ``level``, flip counts, ``attacked`` metrics, ``defended``
        metrics (or None) with what the defence changed, and timings.
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
    result: dict[str, Any] = {
        "kind": kind,
        "level": float(level),
        "seed": int(seed),
        "n_train": int(y_train.size),
        "n_fraud_train": int(y_train.sum()),
        "flipped": int(flipped.size),
        "flipped_fraud_to_legit": int(np.sum(y_train[flipped] == 1)),
        "flipped_legit_to_fraud": int(np.sum(y_train[flipped] == 0)),
        "attacked": {
            **_scores(trained.booster, trained.threshold, x_test, y_test),
            "best_iteration": trained.best_iteration,
        },
        "defended": None,
        "attack_seconds": round(time.perf_counter() - started, 3),
    }
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
        result["defended"] = {
            **_scores(retrained.booster, retrained.threshold, x_test, y_test),
            "best_iteration": retrained.best_iteration,
            "relabelled": clean.relabelled,
            "sanitiser_threshold": clean.sanitiser_threshold,
            "dropped": clean.dropped,
            "flips_undone": int(np.sum(touched & fixed)),
            "clean_rows_touched": int(np.sum(touched & ~fixed)),
        }
        result["defence_seconds"] = round(time.perf_counter() - t0, 3)
        result["defence_params"] = asdict(defence)
    result["seconds"] = round(time.perf_counter() - started, 3)
    log.info(
        "poison %s level %.3f: AUPRC %.4f%s in %.1fs",
        kind,
        level,
        result["attacked"]["auprc"],
        f" -> defended {result['defended']['auprc']:.4f}" if result["defended"] else "",
        result["seconds"],
    )
    return reports.json_safe(result)


def _validate_results(results: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    if not results:
        raise ValueError("collect needs at least one run_level result")
    baseline = [r for r in results if r.get("kind") == NONE or float(r.get("level", -1)) == 0.0]
    if not baseline:
        raise ValueError("the results have no clean baseline (kind 'none' / level 0); add it to the sweep plan")
    for r in results:
        missing = {"kind", "level", "attacked"} - set(r)
        if missing:
            raise ValueError(f"a poison result is missing {sorted(missing)}: {dict(r)!r:.200}")
    return dict(baseline[0])


def degradation_table(results: Sequence[Mapping[str, Any]]) -> list[dict[str, Any]]:
    """One row per (kind, level): AUPRC and recall attacked vs defended, AUPRC lost and share recovered.

    The clean baseline (level 0) is repeated as the first row of each kind. ``recovered`` is
    ``(defended - attacked) / (clean - attacked)`` AUPRC, reported only where the attack lost at least
    0.005 AUPRC (below that the ratio is noise).
    """
    base = _validate_results(results)
    clean_auprc = float(base["attacked"]["auprc"])
    kinds = sorted({str(r["kind"]) for r in results if r["kind"] != NONE}) or [NONE]
    rows: list[dict[str, Any]] = []
    for kind in kinds:
        attacked_levels = [r for r in results if r["kind"] == kind and float(r["level"]) > 0]
        members = [base, *sorted(attacked_levels, key=lambda r: float(r["level"]))]
        for r in members:
            attacked, defended = r["attacked"], r.get("defended") or {}
            lost = clean_auprc - float(attacked["auprc"])
            d_auprc = defended.get("auprc")
            recovered = (d_auprc - attacked["auprc"]) / lost if d_auprc is not None and lost >= 0.005 else None
            rows.append(
                {
                    "kind": kind,
                    "level_pct": round(100 * float(r["level"]), 3),
                    "flipped": int(r.get("flipped", 0)),
                    "auprc": float(attacked["auprc"]),
                    "recall": float(attacked["recall"]),
                    "precision": float(attacked["precision"]),
                    "auprc_defended": d_auprc,
                    "recall_defended": defended.get("recall"),
                    "auprc_lost": lost,
                    "recovered": recovered,
                    "relabelled": defended.get("relabelled"),
                    "dropped": defended.get("dropped"),
                }
            )
    return rows


def degradation_png(rows: Sequence[Mapping[str, Any]]) -> bytes:
    """AUPRC and recall (at each model's threshold) versus poison level: one line per attack, dashed defended."""
    fig = reports.new_figure(11.0, 4.3)
    axes = fig.subplots(1, 2)
    colours = {"random": "#0969da", "targeted": "#cf222e", NONE: "#57606a"}
    for ax, metric, label in ((axes[0], "auprc", "AUPRC (test)"), (axes[1], "recall", "recall at threshold (test)")):
        for kind in dict.fromkeys(str(r["kind"]) for r in rows):
            sub = [r for r in rows if r["kind"] == kind]
            xs = [float(r["level_pct"]) for r in sub]
            colour = colours.get(kind, "#8250df")
            ax.plot(xs, [r[metric] for r in sub], marker="o", color=colour, label=f"{kind} attack")
            defended = [(x, r[f"{metric}_defended"]) for x, r in zip(xs, sub, strict=True)]
            defended = [(x, v) for x, v in defended if v is not None]
            if defended:
                ax.plot(
                    *zip(*defended, strict=True), marker="s", linestyle="--", color=colour, label=f"{kind} + defence"
                )
        ax.set_xlabel("labels flipped (%)")
        ax.set_ylabel(label)
        ax.set_ylim(0.0, 1.02)
        ax.grid(alpha=0.3)
        ax.legend(fontsize=8, loc="lower left")
    fig.suptitle("Label-flip poisoning: degradation and defence")
    return reports.figure_png(fig)


_TABLE_COLUMNS = (
    "kind",
    "level_pct",
    "flipped",
    "auprc",
    "auprc_defended",
    "auprc_lost",
    "recovered",
    "recall",
    "recall_defended",
    "relabelled",
    "dropped",
)


def collect(results: Sequence[Mapping[str, Any]], out_dir: Path | str) -> dict[str, Any]:
    """Build the sweep report from all :func:`run_level` results.

    Writes into ``out_dir``: ``poison_results.json`` (raw results), ``poison_table.json``, ``degradation.png``
    and ``poison_report.html`` (self-contained).

    Returns:
        A JSON-serialisable summary: ``table`` (rows), ``markdown`` (the table as markdown), ``metrics``
        (flat numbers for KFP Metrics) and ``paths``.
    """
    rows = degradation_table(results)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    png = degradation_png(rows)
    (out / "degradation.png").write_bytes(png)
    reports.write_json(list(results), out / "poison_results.json")
    reports.write_json(rows, out / "poison_table.json")
    markdown = reports.markdown_table(rows, _TABLE_COLUMNS)
    metrics = summary_metrics(rows)
    base = _validate_results(results)
    defended_any = any(r.get("defended") for r in results)
    knobs = base.get("defence_params") or {}
    defence_text = (
        "Defence: sanitisation by a model trained on trusted labels only (half of the validation window, "
        "early-stopped on the other half, champion hyper-parameters), which no attack can reach. With t its "
        f"own threshold, training rows labelled legitimate that it scores >= {knobs.get('relabel_factor', '?')}·t "
        f"are relabelled fraud, rows labelled fraud it scores < {knobs.get('drop_factor', '?')}·t whose features "
        f"are all within {knobs.get('typical_sd', '?')} robust SDs of the median are dropped, "
        "and the model is retrained on the result."
        if defended_any
        else "The defence was not run."
    )
    html = reports.html_page(
        "Poisoning sweep: label-flip attacks",
        [
            reports.paragraph(
                f"Clean baseline: AUPRC {base['attacked']['auprc']:.4f}, recall {base['attacked']['recall']:.4f} "
                f"on the clean test set; {base.get('n_train', '?')} training rows with "
                f"{base.get('n_fraud_train', '?')} frauds."
            ),
            reports.section(
                "Method",
                reports.paragraph(
                    "Only training labels are attacked; validation (early stopping, threshold) and test labels "
                    "are trusted. 'random' flips the same share of each class; 'targeted' flips that share of "
                    "fraud labels to legitimate, choosing the frauds nearest one anchor fraud (hiding one "
                    "pattern). Each level retrains with the champion's hyper-parameters."
                ),
                reports.paragraph(defence_text),
            ),
            reports.section("Degradation", reports.img_tag(png, "AUPRC and recall versus poison level")),
            reports.section(
                "Table",
                reports.table_html(rows, _TABLE_COLUMNS),
                reports.paragraph(
                    "recovered = (defended − attacked) / (clean − attacked) AUPRC, shown where the attack "
                    "cost at least 0.005 AUPRC."
                ),
            ),
        ],
        subtitle="AUPRC and recall on the clean test set at each poison level, with and without the defence",
    )
    (out / "poison_report.html").write_text(html, encoding="utf-8")
    return reports.json_safe(
        {
            "table": rows,
            "markdown": markdown,
            "metrics": metrics,
            "paths": {
                "html": str(out / "poison_report.html"),
                "png": str(out / "degradation.png"),
                "table": str(out / "poison_table.json"),
                "results": str(out / "poison_results.json"),
            },
        }
    )


def summary_metrics(rows: Sequence[Mapping[str, Any]]) -> dict[str, float]:
    """Flat numbers for KFP ``Metrics``: clean AUPRC and, per attack, AUPRC at the highest level and recovery."""
    metrics: dict[str, float] = {}
    if not rows:
        return metrics
    metrics["clean_auprc"] = float(rows[0]["auprc"])
    for kind in dict.fromkeys(str(r["kind"]) for r in rows):
        sub = [r for r in rows if r["kind"] == kind]
        worst = max(sub, key=lambda r: float(r["level_pct"]))
        tag = f"{kind}_{worst['level_pct']:g}pct"
        metrics[f"{tag}_auprc"] = float(worst["auprc"])
        metrics[f"{tag}_recall"] = float(worst["recall"])
        if worst.get("auprc_defended") is not None:
            metrics[f"{tag}_auprc_defended"] = float(worst["auprc_defended"])
        if worst.get("recovered") is not None:
            metrics[f"{tag}_recovered"] = float(worst["recovered"])
    return metrics


def log_to_mlflow(
    summary: Mapping[str, Any],
    results: Sequence[Mapping[str, Any]],
    tracking_uri: str,
    experiment: str = "fraud-detection",
    parent_tags: Mapping[str, str] | None = None,
) -> str:
    """Log the sweep to MLflow: one parent run with the report artifacts, a nested child run per result.

    Args:
        summary: the dict :func:`collect` returned (its ``paths`` are logged as artifacts).
        results: the :func:`run_level` results.
        tracking_uri: MLflow tracking URI (``sqlite:///...``, ``http://...``); passed in, never read from env.
        experiment: experiment name (created if missing).
        parent_tags: extra tags for the parent run (e.g. data version, candidate run id).

    Returns:
        The parent run id.
    """
    import mlflow

    client_uri_before = mlflow.get_tracking_uri()
    mlflow.set_tracking_uri(tracking_uri)
    try:
        tracking.configure(tracking_uri, experiment)
        with mlflow.start_run(run_name="poison-sweep", tags={"audit": "poison", **(parent_tags or {})}) as parent:
            mlflow.log_metrics({k: float(v) for k, v in summary.get("metrics", {}).items()})
            for path in summary.get("paths", {}).values():
                if Path(path).is_file():
                    mlflow.log_artifact(path, artifact_path="poison")
            for r in results:
                name = f"poison-{r['kind']}-{100 * float(r['level']):g}pct"
                with mlflow.start_run(run_name=name, nested=True, tags={"audit": "poison"}):
                    mlflow.log_params({"kind": r["kind"], "level": r["level"], "seed": r.get("seed", 0)})
                    values = {f"attacked_{k}": v for k, v in r["attacked"].items() if isinstance(v, int | float)}
                    values["flipped"] = r.get("flipped", 0)
                    if r.get("defended"):
                        values |= {f"defended_{k}": v for k, v in r["defended"].items() if isinstance(v, int | float)}
                    mlflow.log_metrics({k: float(v) for k, v in values.items() if v is not None})
            return str(parent.info.run_id)
    finally:
        mlflow.set_tracking_uri(client_uri_before)


__all__ = [
    "ATTACKS",
    "DEFAULT_LEVELS",
    "DefenceParams",
    "Sanitised",
    "atypicality",
    "collect",
    "degradation_png",
    "degradation_table",
    "flip_indices",
    "log_to_mlflow",
    "poison_labels",
    "run_level",
    "sanitise",
    "summary_metrics",
    "sweep_params",
    "sweep_plan",
    "train_sanitiser",
]
