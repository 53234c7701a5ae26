"""Component ``evaluate-and-promote``: champion vs candidate on the same test window, gates, registry aliases."""

from kfp import dsl
from kfp.dsl import Dataset, Input, Markdown, Metrics, Model, Output

from components import COMPONENTS_IMAGE


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def evaluate_and_promote(
    model: Input[Model],
    test_data: Input[Dataset],
    equalized_odds_difference: float,
    robust_auprc: float,
    auprc_tolerance: float,
    min_auprc: float,
    max_equalized_odds_difference: float,
    robustness_level: float,
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

    ``equalized_odds_difference`` and ``robust_auprc`` are -1 when not measurable (no sensitive attribute, or
    the sweep did not include ``robustness_level``); those gates then say so and pass.
    """
    from pathlib import Path

    from fraud_detection import runtime
    from fraud_detection.promotion import GateConfig
    from fraud_detection.steps.promote import promote_step

    runtime.setup_logging()
    config = GateConfig(
        auprc_tolerance=auprc_tolerance,
        min_auprc=min_auprc,
        max_equalized_odds_difference=max_equalized_odds_difference,
        robustness_level=robustness_level,
        min_robust_fraction=min_robust_fraction,
    )
    result = promote_step(
        Path(model.path),
        Path(test_data.path),
        equalized_odds_difference if equalized_odds_difference >= 0 else None,
        robust_auprc if robust_auprc >= 0 else None,
        config,
        mlflow_tracking_uri,
        registered_model_name,
        serving_root,
    )
    Path(decision.path).write_text(result.markdown)
    outcome = result.decision
    decision.metadata.update(
        {**outcome.as_dict(), "serving_uri": result.serving_uri, "model_version": outcome.candidate_version or ""}
    )
    metrics.log_metric("promoted", float(outcome.promoted))
    metrics.log_metric("candidate_auprc", outcome.candidate_auprc)
    if outcome.champion_auprc is not None:
        metrics.log_metric("champion_auprc", outcome.champion_auprc)
    for gate in outcome.gates:
        metrics.log_metric(f"gate_{gate.name}_passed", float(gate.passed))
    return bool(outcome.promoted)
