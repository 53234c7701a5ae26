"""The champion/challenger decision: gates, their values and bounds, and the decision record.

A candidate replaces the champion only when every gate passes:

``quality``       candidate AUPRC >= champion AUPRC - tolerance (both scored on the same test window)
``quality_floor`` candidate AUPRC >= the larger of ``min_auprc_over_baseline`` x a logistic regression's
                  AUPRC and ``min_auprc_over_fraud_rate`` x the test fraud rate (a random score's AUPRC): a
                  floor relative to what the data allows, so a hard data set can promote a model that clearly
                  beats the baseline, and shuffled labels (AUPRC near the fraud rate) never promote
``fairness``      equalised-odds difference across groups <= a maximum
``robustness``    the share of clean AUPRC the poison sweep keeps at a given level of flipped labels >= the
                  champion's share (recorded when it was promoted) - a tolerance; with no champion, >= a stated
                  reference share (``min_robust_fraction``). Label noise costs more on data that is hard to
                  separate, so an absolute bound would judge the data, not the model

Every gate's note says why it passed or failed in terms a data scientist can act on.

A gate whose input cannot exist says so and passes: ``quality`` on the first run (no champion yet),
``fairness`` when the data has no sensitive attribute. A robustness measurement that is missing fails its
gate: the run's parameters are checked to include the robustness level in the sweep, so a missing value means
something went wrong, and a champion is never replaced on a gate that was not measured.
A candidate whose model file is byte-identical to the champion's is never registered again.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field
from typing import Any

from fraud_detection.config import GateKnobs


@dataclass(frozen=True)
class Gate:
    """One gate's verdict."""

    name: str
    value: float | None
    bound: float | None
    comparison: str
    passed: bool
    note: str = ""


@dataclass
class Decision:
    """What the promotion step decided, and why."""

    promoted: bool
    reason: str
    gates: list[Gate] = field(default_factory=list)
    candidate_auprc: float = float("nan")
    champion_auprc: float | None = None
    champion_version: str | None = None
    candidate_version: str | None = None
    identical_to_champion: bool = False

    def as_dict(self) -> dict[str, Any]:
        """JSON-friendly form (NaN becomes None)."""

        def clean(value: Any) -> Any:
            if isinstance(value, float) and not math.isfinite(value):
                return None
            if isinstance(value, list):
                return [clean(v) for v in value]
            if isinstance(value, dict):
                return {k: clean(v) for k, v in value.items()}
            return value

        return {k: clean(v) for k, v in asdict(self).items()}


@dataclass(frozen=True)
class GateInputs:
    """What the gates judge, all measured on this run's data (None: not measurable or not measured)."""

    candidate_auprc: float
    """The candidate's AUPRC on the test window."""
    champion_auprc: float | None = None
    """The champion's AUPRC on the same test window (None: no champion yet)."""
    baseline_auprc: float | None = None
    """A logistic regression's AUPRC on the same window (trained on the same training window)."""
    fraud_rate: float | None = None
    """The test window's fraud rate: the AUPRC of a score that knows nothing."""
    equalized_odds_difference: float | None = None
    robust_fraction: float | None = None
    """Share of the clean AUPRC kept when the poison sweep flips labels at the robustness level."""
    champion_robust_fraction: float | None = None
    """The same share measured when the champion was promoted (None: no champion, or it was not recorded)."""
    family: str = ""
    """The candidate's model family (``xgboost``, ``mlp``, ``blend``), named in the notes."""


def _quality_gate(inputs: GateInputs, config: GateKnobs) -> Gate:
    candidate = inputs.candidate_auprc
    if inputs.champion_auprc is None:
        return Gate("quality", candidate, None, ">= champion - tolerance", True, "no champion yet: nothing to beat")
    bound = inputs.champion_auprc - config.auprc_tolerance
    passed = candidate >= bound
    if passed:
        note = (
            f"candidate {candidate:.4f} vs champion {inputs.champion_auprc:.4f} on the same test window "
            f"(tolerance {config.auprc_tolerance:g})"
        )
    else:
        note = (
            f"the champion scores {inputs.champion_auprc:.4f} on this very test window and the candidate "
            f"{candidate:.4f}: keep the champion, or retrain on more recent or more data"
        )
    return Gate("quality", candidate, bound, ">=", passed, note)


def _floor_gate(inputs: GateInputs, config: GateKnobs) -> Gate:
    candidate = inputs.candidate_auprc
    parts = []
    if inputs.baseline_auprc is not None and math.isfinite(inputs.baseline_auprc):
        parts.append((config.min_auprc_over_baseline * inputs.baseline_auprc, "baseline"))
    if inputs.fraud_rate is not None and math.isfinite(inputs.fraud_rate):
        parts.append((config.min_auprc_over_fraud_rate * inputs.fraud_rate, "fraud rate"))
    if not parts:
        return Gate("quality_floor", candidate, None, ">=", False, "not measured: no baseline and no fraud rate")
    bound, binding = max(parts)
    baseline_text = f"{inputs.baseline_auprc:.4f}" if inputs.baseline_auprc is not None else "n/a"
    rate_text = f"{inputs.fraud_rate:.4%}" if inputs.fraud_rate is not None else "n/a"
    passed = candidate >= bound
    if passed:
        ratio = f"{candidate / inputs.baseline_auprc:.1f}x" if inputs.baseline_auprc else "n/a"
        note = (
            f"{ratio} the logistic baseline ({baseline_text}); the floor is the larger of "
            f"{config.min_auprc_over_baseline:g}x that and {config.min_auprc_over_fraud_rate:g}x the fraud rate "
            f"({rate_text})"
        )
    elif binding == "fraud rate":
        note = (
            f"AUPRC {candidate:.4f} is within {config.min_auprc_over_fraud_rate:g}x of the fraud rate ({rate_text}), "
            "what a random score gets: the labels carry no signal the features explain. Check that each label "
            "belongs to its row (shuffled or misaligned labels look like this) and that the label column is right"
        )
    else:
        note = (
            f"AUPRC {candidate:.4f} is below {config.min_auprc_over_baseline:g}x the logistic baseline "
            f"({baseline_text}): the {inputs.family or 'candidate'} model does not clearly beat a linear model. "
            "Look for a leak-free feature the baseline exploits, or tune the families (depth, rounds, MLP width)"
        )
    return Gate("quality_floor", candidate, bound, ">=", passed, note)


def _fairness_gate(inputs: GateInputs, config: GateKnobs) -> Gate:
    value = inputs.equalized_odds_difference
    bound = config.max_equalized_odds_difference
    if value is None or not math.isfinite(value):
        return Gate(
            "fairness",
            None,
            bound,
            "<=",
            True,
            "not measurable: no sensitive attribute in the data, or fewer than two groups to compare",
        )
    passed = value <= bound
    note = (
        "largest gap between groups in recall or false-positive rate at the decision threshold"
        if passed
        else f"groups differ by {value:.3f} in recall or false-positive rate (bound {bound:g}): see the per-group "
        "table in the fairness report; more fraud examples of the worst group, or a threshold per group, "
        "narrow it"
    )
    return Gate("fairness", value, bound, "<=", passed, note)


def _robustness_gate(inputs: GateInputs, config: GateKnobs) -> Gate:
    level = f"{config.robustness_level:.0%}"
    value = inputs.robust_fraction
    champion = inputs.champion_robust_fraction
    if champion is not None:
        bound, reference = (
            champion - config.robust_fraction_tolerance,
            (f"the champion kept {champion:.0%} (tolerance {config.robust_fraction_tolerance:g})"),
        )
    else:
        bound, reference = (
            config.min_robust_fraction,
            (f"no champion measured yet: the stated reference is {config.min_robust_fraction:.0%}"),
        )
    if value is None or not math.isfinite(value):
        return Gate("robustness", None, bound, ">=", False, f"not measured: the poison sweep has no result at {level}")
    passed = value >= bound
    if passed:
        note = f"keeps {value:.0%} of its clean AUPRC with {level} of training labels flipped; {reference}"
    else:
        note = (
            f"keeps only {value:.0%} of its clean AUPRC with {level} of training labels flipped; {reference}. "
            "The labels of this training window are fragile: check how frauds get labelled (late or missing "
            "chargebacks), or see in the poison report whether the defence recovers it"
        )
    return Gate("robustness", value, bound, ">=", passed, note)


def evaluate_gates(inputs: GateInputs, config: GateKnobs) -> list[Gate]:
    """Apply every gate to what this run measured.

    A missing champion or fairness value means "not measurable here" and passes, saying so; a missing
    robustness value or quality floor fails.
    """
    return [
        _quality_gate(inputs, config),
        _floor_gate(inputs, config),
        _fairness_gate(inputs, config),
        _robustness_gate(inputs, config),
    ]


def decide(
    gates: list[Gate],
    candidate_auprc: float,
    champion_auprc: float | None,
    champion_version: str | None,
    identical_to_champion: bool,
) -> Decision:
    """Promote only when every gate passes and the candidate is not the champion itself."""
    failed = [g.name for g in gates if not g.passed]
    if identical_to_champion:
        promoted, reason = False, f"candidate is byte-identical to champion version {champion_version}: nothing to do"
    elif failed:
        promoted, reason = False, f"blocked by gate(s): {', '.join(failed)}; the champion stays as it was"
    else:
        promoted = True
        reason = (
            "first champion" if champion_version is None else f"all gates passed; replaces version {champion_version}"
        )
    return Decision(
        promoted=promoted,
        reason=reason,
        gates=gates,
        candidate_auprc=candidate_auprc,
        champion_auprc=champion_auprc,
        champion_version=champion_version,
        identical_to_champion=identical_to_champion,
    )


def _fmt(value: float | None) -> str:
    return "n/a" if value is None else f"{value:.4f}"


def render_markdown(decision: Decision) -> str:
    """The decision record as Markdown (KFP UI, MLflow artifact)."""
    verdict = "PROMOTED" if decision.promoted else "NOT PROMOTED"
    lines = [
        f"# Promotion decision: {verdict}",
        "",
        f"**{decision.reason}**",
        "",
        f"- candidate version: {decision.candidate_version or 'not registered'}",
        f"- champion version before: {decision.champion_version or 'none'}",
        f"- candidate test AUPRC: {_fmt(decision.candidate_auprc)}; champion on the same window: "
        f"{_fmt(decision.champion_auprc)}",
        "",
        "| gate | value | bound | result | note |",
        "|---|---|---|---|---|",
    ]
    for gate in decision.gates:
        bound = f"{gate.comparison} {_fmt(gate.bound)}" if gate.bound is not None else gate.comparison
        result = "pass" if gate.passed else "**FAIL**"
        lines.append(f"| {gate.name} | {_fmt(gate.value)} | {bound} | {result} | {gate.note} |")
    return "\n".join(lines) + "\n"
