"""The poison sweep's report: degradation plot, table (JSON and markdown), raw results and one HTML page."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Any, ClassVar

from fraud_detection import reports
from fraud_detection.audits.poison_results import (
    BOOTSTRAP_RESAMPLES,
    NOISE_SES,
    NONE,
    SWEEP_FAMILY,
    DegradationRow,
    PoisonSweep,
)

FAMILY_NAMES = {"xgboost": "XGBoost", "mlp": "MLP", "blend": "blend"}
"""How the reports name a model family."""

WITHIN_NOISE = "–"
"""The recovery cell where the attack's loss is within the noise (no share of it is meaningful)."""

TABLE_COLUMNS: tuple[str, ...] = (
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
"""The table's columns in the HTML report and the markdown."""


@dataclass(frozen=True)
class PoisonFiles(reports.ReportFiles):
    """What :func:`render_poison` wrote (``poison_report.html``: the self-contained report)."""

    NAMES: ClassVar[tuple[str, ...]] = (
        "poison_report.html",
        "degradation.png",
        "poison_table.json",
        "poison_results.json",
    )
    degradation_png: Path
    """``degradation.png``: AUPRC and recall versus poison level."""
    table_json: Path
    """``poison_table.json``: the degradation table (the run summary reads it)."""
    results_json: Path
    """``poison_results.json``: every level's raw result."""


def recovered_text(row: Mapping[str, Any]) -> str:
    """A table row's recovery as a percentage; :data:`WITHIN_NOISE` where the loss is within the noise, an empty
    cell where the defence did not run."""
    if row.get("auprc_defended") is None:
        return ""
    recovered = row.get("recovered")
    return WITHIN_NOISE if recovered is None else f"{recovered:.0%}"


def sweep_model(winner: str = "") -> str:
    """The model the sweep retrains, in the reports' words, with the bake-off's winner when it differs."""
    name = FAMILY_NAMES.get(SWEEP_FAMILY, SWEEP_FAMILY)
    if not winner or winner == SWEEP_FAMILY:
        return name
    return f"{name} (not the winning {FAMILY_NAMES.get(winner, winner)})"


def noise_text(noise: float | None) -> str:
    """One sentence on when a recovery share is shown."""
    threshold = "" if noise is None else f" ({noise:.3f} AUPRC here)"
    return (
        "recovered = (defended − attacked) / (clean − attacked) AUPRC, shown only where the attack's loss exceeds "
        f"{NOISE_SES:g} standard errors of the clean AUPRC{threshold}, measured over {BOOTSTRAP_RESAMPLES} "
        f"bootstrap resamples of the test window; {WITHIN_NOISE} = a loss within that noise."
    )


def degradation_png(rows: Sequence[DegradationRow]) -> bytes:
    """AUPRC and recall (at each model's threshold) versus poison level: one line per attack, dashed defended."""
    fig = reports.new_figure(11.0, 4.3)
    axes = fig.subplots(1, 2)
    colours = {"random": "#0969da", "targeted": "#cf222e", NONE: "#57606a"}
    panels = ((axes[0], "auprc", "AUPRC (test)"), (axes[1], "recall", "recall at threshold (test)"))
    for ax, metric, label in panels:
        for kind in dict.fromkeys(r.kind for r in rows):
            sub = [r for r in rows if r.kind == kind]
            xs = [r.level_pct for r in sub]
            colour = colours.get(kind, "#8250df")
            attacked = [r.auprc if metric == "auprc" else r.recall for r in sub]
            ax.plot(xs, attacked, marker="o", color=colour, label=f"{kind} attack")
            values = [r.auprc_defended if metric == "auprc" else r.recall_defended for r in sub]
            defended = [(x, v) for x, v in zip(xs, values, strict=True) if v is not None]
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


def _table_rows(sweep: PoisonSweep) -> list[dict[str, Any]]:
    return [{**r.to_dict(), "recovered": recovered_text(r.to_dict())} for r in sweep.table]


def markdown(sweep: PoisonSweep) -> str:
    """The degradation table as GitHub-flavoured markdown (for run summaries and docs)."""
    return reports.markdown_table(_table_rows(sweep), TABLE_COLUMNS)


def _defence_text(sweep: PoisonSweep) -> str:
    if not sweep.defended_any:
        return "The defence was not run."
    knobs = sweep.baseline.defence_params
    relabel, drop, typical = (
        ("?", "?", "?") if knobs is None else (knobs.relabel_factor, knobs.drop_factor, knobs.typical_sd)
    )
    return (
        "Defence: sanitisation by a model trained on trusted labels only (half of the validation window, "
        "early-stopped on the other half, champion hyper-parameters), which no attack can reach. With t its "
        f"own threshold, training rows labelled legitimate that it scores >= {relabel}·t "
        f"are relabelled fraud, rows labelled fraud it scores < {drop}·t whose features "
        f"are all within {typical} robust SDs of the median are dropped, "
        "and the model is retrained on the result."
    )


def _se_text(se: float | None) -> str:
    return "" if se is None else f" (standard error {se:.3f} over bootstrap resamples of the test window)"


def report_html(sweep: PoisonSweep, png: bytes) -> str:
    """The self-contained HTML report of the sweep, with ``png`` (from :func:`degradation_png`) embedded."""
    base = sweep.baseline
    model = sweep_model()
    return reports.html_page(
        "Poisoning sweep: label-flip attacks",
        [
            reports.paragraph(
                f"Clean baseline ({model}): AUPRC {base.attacked.auprc:.4f}{_se_text(base.auprc_se)}, recall "
                f"{base.attacked.recall:.4f} on the clean test set; {base.n_train} training rows with "
                f"{base.n_fraud_train} frauds."
            ),
            reports.section(
                "Method",
                reports.paragraph(
                    f"Only training labels are attacked; validation (early stopping, threshold) and test labels "
                    "are trusted. 'random' flips the same share of each class; 'targeted' flips that share of "
                    "fraud labels to legitimate, choosing the frauds nearest one anchor fraud (hiding one "
                    f"pattern). Each level retrains the {model} family with the run's hyper-parameters, whichever "
                    "family won the bake-off (retraining the network or the blend at every level would not fit "
                    "the run's time budget): the sweep measures how much these labels can be trusted."
                ),
                reports.paragraph(_defence_text(sweep)),
            ),
            reports.section("Degradation", reports.img_tag(png, "AUPRC and recall versus poison level")),
            reports.section(
                "Table",
                reports.table_html(_table_rows(sweep), TABLE_COLUMNS),
                reports.paragraph(noise_text(sweep.noise)),
            ),
        ],
        subtitle=f"{model} retrained at each poison level: AUPRC and recall on the clean test set, with and "
        "without the defence",
    )


def render_poison(sweep: PoisonSweep, out_dir: Path | str) -> PoisonFiles:
    """Write the sweep's report files into ``out_dir`` (created if needed) and return their paths."""
    files = PoisonFiles.in_folder(out_dir)
    png = degradation_png(sweep.table)
    files.degradation_png.write_bytes(png)
    reports.write_json([r.to_dict() for r in sweep.results], files.results_json)
    reports.write_json([r.to_dict() for r in sweep.table], files.table_json)
    files.report_html.write_text(report_html(sweep, png), encoding="utf-8")
    return files


__all__ = [
    "FAMILY_NAMES",
    "TABLE_COLUMNS",
    "WITHIN_NOISE",
    "PoisonFiles",
    "degradation_png",
    "markdown",
    "noise_text",
    "recovered_text",
    "render_poison",
    "report_html",
    "sweep_model",
]
