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
    import shutil
    import tempfile
    from collections import namedtuple
    from pathlib import Path

    from fraud_detection import runtime
    from fraud_detection.steps.audits import fairness_step
    from fraud_detection.tracking import finite_metrics

    runtime.setup_logging()
    with tempfile.TemporaryDirectory() as tmp:
        result = fairness_step(
            Path(test_data.path), Path(model.path), sensitive_column, Path(tmp), mlflow_tracking_uri, mlflow_experiment
        )
        shutil.copyfile(result.files.report_html, report.path)
        shutil.copyfile(result.files.summary_json, summary.path)
    for name, value in finite_metrics(result.metrics).items():
        metrics.log_metric(name, value)
    FairnessOutputs = namedtuple("FairnessOutputs", ["equalized_odds_difference", "note"])
    # None when not measurable: no sensitive attribute, or fewer than two groups.
    eod = result.equalized_odds_difference
    return FairnessOutputs(-1.0 if eod is None else float(eod), str(result.note))
