"""Component ``report``: the run's index page (HTML) and summary (Markdown) for the Kubeflow dashboard."""

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Input, Markdown, Metrics, Model, Output

from components import COMPONENTS_IMAGE


@dsl.component(base_image=COMPONENTS_IMAGE, install_kfp_package=False)
def run_report(
    data_summary: Input[Metrics],
    test_data: Input[Dataset],
    model: Input[Model],
    train_metrics: Input[Metrics],
    poison_table: Input[Dataset],
    poison_report: Input[HTML],
    fairness_metrics: Input[Metrics],
    fairness_summary: Input[Artifact],
    fairness_report: Input[HTML],
    drift_metrics: Input[Metrics],
    drift_report: Input[HTML],
    decision: Input[Markdown],
    data_uri: str,
    registered_model_name: str,
    mlflow_tracking_uri: str,
    mlflow_experiment: str,
    report: Output[HTML],
    summary: Output[Markdown],
) -> None:
    """One page for the whole run (summary, metrics, candidates, the audits' plots, the decision, links to the
    full reports and into MLflow), and the same summary as Markdown."""
    from components import runner
    from fraud_detection.reports.run import render_markdown
    from fraud_detection.steps.report import inputs_from_artifacts, report_step

    with runner.step("report"):
        artifacts = {
            "data_summary": data_summary,
            "test_data": test_data,
            "model": model,
            "train_metrics": train_metrics,
            "poison_table": poison_table,
            "poison_report": poison_report,
            "fairness_metrics": fairness_metrics,
            "fairness_summary": fairness_summary,
            "fairness_report": fairness_report,
            "drift_metrics": drift_metrics,
            "drift_report": drift_report,
            "decision": decision,
        }
        facts = report_step(
            inputs_from_artifacts(artifacts, data_uri),
            runner.path(report),
            mlflow_tracking_uri,
            mlflow_experiment,
            registered_model_name,
        )
        runner.path(summary).write_text(render_markdown(facts))
