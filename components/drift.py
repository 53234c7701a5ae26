"""Component ``drift``: Evidently report between the training window and the current data."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Metrics, Model, Output

from components import COMPONENTS_IMAGE


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def drift_check(
    reference_data: Input[Dataset],
    current_data: Input[Dataset],
    model: Input[Model],
    sensitive_column: str,
    drift_data_uri: str,
    mlflow_tracking_uri: str,
    mlflow_experiment: str,
    report: Output[HTML],
    summary: Output[Artifact],
    metrics: Output[Metrics],
) -> NamedTuple("DriftOutputs", [("drift_share", float), ("drifted", bool)]):  # type: ignore[valid-type]
    """Feature drift (model features only, never Time or the label) and score drift; ``drifted`` lets later
    steps branch."""
    from collections import namedtuple

    from components import runner
    from fraud_detection.steps.audits import drift_step

    with runner.step("drift"), runner.scratch() as folder:
        result = drift_step(
            runner.path(reference_data),
            runner.path(current_data),
            drift_data_uri,
            sensitive_column,
            runner.path(model),
            folder,
            mlflow_tracking_uri,
            mlflow_experiment,
        )
        runner.deliver(result.files.report_html, report)
        runner.deliver(result.files.summary_json, summary)
    runner.log_metrics(metrics, result.metrics)
    DriftOutputs = namedtuple("DriftOutputs", ["drift_share", "drifted"])
    return DriftOutputs(float(result.drift_share), bool(result.drifted))
