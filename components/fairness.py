"""Component ``fairness``: per-group metrics and disparities (Fairlearn) plus SHAP explanations."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components import COMPONENTS_IMAGE


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def fairness_audit(
    test_data: Input[Dataset],
    model: Input[Model],
    sensitive_column: str,
    mlflow_tracking_uri: str,
    mlflow_experiment: str,
    report: Output[HTML],
    summary: Output[Artifact],
    metrics: Output[Metrics],
) -> NamedTuple("FairnessOutputs", [("equalized_odds_difference", float), ("note", str)]):  # type: ignore[valid-type]
    """Audit the candidate by ``sensitive_column``; when the data has no such column, or fewer than two groups
    to compare, the report says so and ``equalized_odds_difference`` is -1 (the promotion gate then reports it
    as not measurable)."""
    from collections import namedtuple

    from components import runner
    from fraud_detection.steps.audits import fairness_step

    with runner.step("fairness"), runner.scratch() as folder:
        result = fairness_step(
            runner.path(test_data), runner.path(model), sensitive_column, folder, mlflow_tracking_uri, mlflow_experiment
        )
        runner.deliver(result.files.report_html, report)
        runner.deliver(result.files.summary_json, summary)
    runner.log_metrics(metrics, result.metrics)
    FairnessOutputs = namedtuple("FairnessOutputs", ["equalized_odds_difference", "note"])
    # None when not measurable (no sensitive attribute, or fewer than two groups): -1 for KFP.
    return FairnessOutputs(runner.to_kfp(result.equalized_odds_difference), str(result.note))
