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
    drift_data_uri: str,
    sensitive_column: str,
    mlflow_tracking_uri: str,
    mlflow_experiment: str,
    report: Output[HTML],
    summary: Output[Artifact],
    metrics: Output[Metrics],
) -> NamedTuple("DriftOutputs", [("drift_share", float), ("drifted", bool)]):  # type: ignore[valid-type]
    """Feature drift (model features only, never Time or the label) and score drift; ``drifted`` lets later
    steps branch."""
    import shutil
    import tempfile
    from collections import namedtuple
    from pathlib import Path

    from fraud_detection import runtime
    from fraud_detection.schema import DataValidationError
    from fraud_detection.steps.audits import drift_step

    runtime.setup_logging()
    with tempfile.TemporaryDirectory() as tmp:
        try:
            result = drift_step(
                Path(reference_data.path),
                Path(current_data.path),
                drift_data_uri,
                sensitive_column,
                Path(model.path),
                Path(tmp),
                mlflow_tracking_uri,
                mlflow_experiment,
            )
        except (DataValidationError, FileNotFoundError) as error:
            raise runtime.fail("drift", error) from error
        shutil.copyfile(result.files.report_html, report.path)
        shutil.copyfile(result.files.summary_json, summary.path)
    for name, value in result.metrics.items():
        metrics.log_metric(name, value)
    DriftOutputs = namedtuple("DriftOutputs", ["drift_share", "drifted"])
    return DriftOutputs(float(result.drift_share), bool(result.drifted))
