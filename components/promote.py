"""Component ``evaluate-and-promote``: champion vs candidate on the same test window, gates, registry aliases."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from components import COMPONENTS_IMAGE


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def evaluate_and_promote(
    model: Input[Model],
    test_data: Input[Dataset],
    equalized_odds_difference: float,
    robust_fraction: float,
    auprc_tolerance: float,
    min_auprc_over_baseline: float,
    min_auprc_over_fraud_rate: float,
    max_equalized_odds_difference: float,
    robustness_level: float,
    robust_fraction_tolerance: float,
    min_robust_fraction: float,
    registered_model_name: str,
    serving_root: str,
    mlflow_tracking_uri: str,
    decision: Output[Markdown],
    metrics: Output[Metrics],
) -> bool:
    """Register the candidate as ``challenger``; move ``champion`` to it and export it only if every gate passes.

    Returns whether it was promoted: the single output, because kfp.local (2.17) resolves a condition only on a
    task's single ``Output``. The export URI and registry version travel in ``decision.metadata``.

    ``equalized_odds_difference`` and ``robust_fraction`` are -1 when not measurable (no sensitive attribute, or
    fewer than two groups to compare); the fairness gate then says so and passes.
    """
    from components import runner
    from fraud_detection.config import GateKnobs
    from fraud_detection.steps.promote import promote_step

    with runner.step("evaluate-and-promote"):
        gates = GateKnobs(
            auprc_tolerance=auprc_tolerance,
            min_auprc_over_baseline=min_auprc_over_baseline,
            min_auprc_over_fraud_rate=min_auprc_over_fraud_rate,
            max_equalized_odds_difference=max_equalized_odds_difference,
            robustness_level=robustness_level,
            robust_fraction_tolerance=robust_fraction_tolerance,
            min_robust_fraction=min_robust_fraction,
        )
        result = promote_step(
            runner.path(model),
            runner.path(test_data),
            runner.from_kfp(equalized_odds_difference),
            runner.from_kfp(robust_fraction),
            gates,
            mlflow_tracking_uri,
            registered_model_name,
            serving_root,
        )
    runner.path(decision).write_text(result.markdown)
    outcome = result.decision
    decision.metadata.update(
        {**outcome.as_dict(), "serving_uri": result.serving_uri, "model_version": outcome.candidate_version or ""}
    )
    runner.log_metrics(
        metrics,
        {
            "promoted": outcome.promoted,
            "candidate_auprc": outcome.candidate_auprc,
            "champion_auprc": outcome.champion_auprc,
            **{f"gate_{gate.name}_passed": gate.passed for gate in outcome.gates},
        },
    )
    return bool(outcome.promoted)
