"""Components of the poison sweep: one task per poisoning level (fanned out), then one that collects them."""

from typing import NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Dataset, Input, Metrics, Model, Output

from components import COMPONENTS_IMAGE


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def poison_level(
    train_data: Input[Dataset],
    validation_data: Input[Dataset],
    test_data: Input[Dataset],
    model: Input[Model],
    level: float,
    kinds: list,
    seed: int,
) -> str:
    """Flip training labels at ``level`` with every attack kind, retrain with the candidate's knobs, defend;
    returns the results as JSON (scored on the clean test window)."""
    import json
    from pathlib import Path

    from fraud_detection import runtime
    from fraud_detection.steps.audits import poison_level_step

    runtime.setup_logging()
    try:
        results = poison_level_step(
            Path(train_data.path),
            Path(validation_data.path),
            Path(test_data.path),
            Path(model.path),
            level,
            [str(k) for k in kinds],
            seed,
        )
    except ValueError as error:
        raise runtime.fail(f"poison-level {level}", error) from error
    return json.dumps([result.to_dict() for result in results])


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def poison_collect(
    results: list,
    robustness_level: float,
    data_version: str,
    mlflow_tracking_uri: str,
    mlflow_experiment: str,
    report: Output[HTML],
    metrics: Output[Metrics],
    table: Output[Dataset],
) -> NamedTuple("PoisonOutputs", [("robust_auprc", float), ("markdown", str)]):  # type: ignore[valid-type]
    """One degradation report (table, plot, HTML) for the KFP UI and MLflow; ``robust_auprc`` is the worst attacked
    AUPRC at ``robustness_level`` (-1 when the sweep did not include that level)."""
    import json
    import shutil
    import tempfile
    from collections import namedtuple
    from pathlib import Path

    from fraud_detection import runtime
    from fraud_detection.steps.audits import poison_collect_step
    from fraud_detection.tracking import finite_metrics

    runtime.setup_logging()
    flat = [result for chunk in results for result in json.loads(chunk)]
    with tempfile.TemporaryDirectory() as tmp:
        summary = poison_collect_step(
            flat, Path(tmp), robustness_level, mlflow_tracking_uri, mlflow_experiment, data_version
        )
        shutil.copyfile(summary.files.report_html, report.path)
        shutil.copyfile(summary.files.table_json, table.path)
    for name, value in finite_metrics(summary.metrics).items():
        metrics.log_metric(name, value)
    report.metadata["mlflow_run_id"] = summary.mlflow_run_id
    PoisonOutputs = namedtuple("PoisonOutputs", ["robust_auprc", "markdown"])
    robust = summary.robust_auprc
    return PoisonOutputs(-1.0 if robust is None else float(robust), summary.markdown)
