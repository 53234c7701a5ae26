"""The champion/challenger decision: gates, their values and bounds, and the decision record.

A candidate replaces the champion only when every gate passes:

``quality``      candidate AUPRC >= champion AUPRC - tolerance (both scored on the same test window)
``quality_floor`` candidate AUPRC >= an absolute floor
``fairness``     equalised-odds difference across groups <= a maximum
``robustness``   AUPRC under label-flip poisoning at a given level >= a fraction of clean AUPRC

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


def evaluate_gates(
    candidate_auprc: float,
    champion_auprc: float | None,
    equalized_odds_difference: float | None,
    robust_auprc: float | None,
    clean_auprc: float | None,
    config: GateKnobs,
) -> list[Gate]:
    """Apply every gate. A ``None`` champion or fairness value means "not measurable here" and passes, saying
    so; a ``None`` robustness value fails the robustness gate."""
    gates: list[Gate] = []
    if champion_auprc is None:
        gates.append(Gate("quality", candidate_auprc, None, ">= champion - tolerance", True, "no champion yet"))
    else:
        bound = champion_auprc - config.auprc_tolerance
        gates.append(
            Gate(
                "quality",
                candidate_auprc,
                bound,
                ">=",
                candidate_auprc >= bound,
                f"champion AUPRC {champion_auprc:.4f} on the same test window, tolerance {config.auprc_tolerance}",
            )
        )
    gates.append(Gate("quality_floor", candidate_auprc, config.min_auprc, ">=", candidate_auprc >= config.min_auprc))
    if equalized_odds_difference is None or not math.isfinite(equalized_odds_difference):
        gates.append(
            Gate(
                "fairness",
                None,
                config.max_equalized_odds_difference,
                "<=",
                True,
                "not measurable: no sensitive attribute in the data, or fewer than two groups to compare",
            )
        )
    else:
        gates.append(
            Gate(
                "fairness",
                equalized_odds_difference,
                config.max_equalized_odds_difference,
                "<=",
                equalized_odds_difference <= config.max_equalized_odds_difference,
                "equalised-odds difference across groups",
            )
        )
    if robust_auprc is None or clean_auprc is None or clean_auprc <= 0:
        gates.append(
            Gate(
                "robustness",
                None,
                config.min_robust_fraction,
                ">=",
                False,
                f"not measured: the poison sweep has no result at {config.robustness_level:.0%}",
            )
        )
    else:
        fraction = robust_auprc / clean_auprc
        gates.append(
            Gate(
                "robustness",
                fraction,
                config.min_robust_fraction,
                ">=",
                fraction >= config.min_robust_fraction,
                f"AUPRC {robust_auprc:.4f} at {config.robustness_level:.0%} flipped labels vs {clean_auprc:.4f} clean",
            )
        )
    return gates


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
