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
    poison_kinds: list,
    seed: int,
) -> str:
    """Flip training labels at ``level`` with every attack kind, retrain with the candidate's knobs, defend;
    returns the results as JSON (scored on the clean test window)."""
    import json

    from components import runner
    from fraud_detection.steps.audits import poison_level_step

    with runner.step(f"poison-level {level:g}"):
        results = poison_level_step(
            runner.path(train_data),
            runner.path(validation_data),
            runner.path(test_data),
            runner.path(model),
            level,
            [str(kind) for kind in poison_kinds],
            seed,
        )
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
) -> NamedTuple(  # type: ignore[valid-type]
    "PoisonOutputs", [("robust_auprc", float), ("robust_fraction", float), ("markdown", str)]
):
    """One degradation report (table, plot, HTML) for the KFP UI and MLflow; ``robust_auprc`` is the worst attacked
    AUPRC at ``robustness_level`` and ``robust_fraction`` that AUPRC over the sweep's clean one. The sweep
    retrains the XGBoost family, whatever won the bake-off."""
    import json
    from collections import namedtuple

    from components import runner
    from fraud_detection.steps.audits import poison_collect_step

    with runner.step("poison-sweep"), runner.scratch() as folder:
        flat = [result for chunk in results for result in json.loads(chunk)]
        sweep = poison_collect_step(
            flat, folder, robustness_level, mlflow_tracking_uri, mlflow_experiment, data_version
        )
        runner.deliver(sweep.files.report_html, report)
        runner.deliver(sweep.files.table_json, table)
    runner.log_metrics(metrics, sweep.metrics)
    report.metadata["mlflow_run_id"] = sweep.mlflow_run_id
    PoisonOutputs = namedtuple("PoisonOutputs", ["robust_auprc", "robust_fraction", "markdown"])
    return PoisonOutputs(runner.to_kfp(sweep.robust_auprc), runner.to_kfp(sweep.robust_fraction), sweep.markdown)
