"""The pipeline DAG. Its parameters are the knobs of ``fraud_detection.config`` (``fraud run --help`` lists them)."""

import inspect
from collections.abc import Callable
from typing import Any, NamedTuple

from kfp import dsl
from kfp.dsl import HTML, Artifact, Dataset, Markdown, Metrics, Model

from components.deploy import deploy_model
from components.drift import drift_check
from components.fairness import fairness_audit
from components.load import load_data
from components.poison import poison_collect, poison_level
from components.promote import evaluate_and_promote
from components.report import run_report
from components.train import select_model, train_family
from fraud_detection.config import pipeline_knobs

PIPELINE_NAME = "fraud-detection"

RETRIED = ("train-family", "select", "poison-sweep", "fairness", "drift", "evaluate-and-promote", "deploy", "report")
"""Tasks retried on failure: what they write outside KFP is safe to write twice (a second MLflow run; promotion's
idempotent registration, immutable exports and compare-and-set move; deploy follows the champion pointer; the
report only renders its inputs).
``load`` and ``poison-level`` fail for reasons a retry does not change (bad data, a bug)."""
RETRY = {"num_retries": 2, "backoff_duration": "30s", "backoff_factor": 2.0, "backoff_max_duration": "300s"}
CACHED = ("poison-level",)
"""Tasks KFP may answer from its cache: pure functions of their inputs. Every other task reads data that can change
under the same URI (``load``) or writes to MLflow, the registry or the cluster, so it always runs."""


class PipelineOutputs(NamedTuple):
    """What a run hands back (``fraud run`` reads these for its summary)."""

    data_summary: Metrics
    test_data: Dataset
    model: Model
    train_metrics: Metrics
    bakeoff: Markdown
    poison_report: HTML
    poison_metrics: Metrics
    poison_table: Dataset
    fairness_report: HTML
    fairness_metrics: Metrics
    fairness_summary: Artifact
    drift_report: HTML
    drift_metrics: Metrics
    decision: Markdown
    run_report: HTML
    run_summary: Markdown


def _with_knob_signature(body: Callable[..., PipelineOutputs]) -> Callable[..., PipelineOutputs]:
    """Give ``body`` the pipeline's signature and parameter docs, generated from the knob declarations.

    KFP reads a pipeline's parameters from its signature (and their descriptions from its docstring's Args),
    then calls it with one placeholder per parameter, in order. The wrapper hands ``body`` those placeholders
    as one mapping from knob name to placeholder.
    """
    knobs = pipeline_knobs()

    def pipeline(*values: Any) -> PipelineOutputs:
        return body(dict(zip((k.name for k in knobs), values, strict=True)))

    pipeline.__signature__ = inspect.Signature(  # type: ignore[attr-defined]
        [
            inspect.Parameter(k.name, inspect.Parameter.POSITIONAL_OR_KEYWORD, default=k.default, annotation=k.type)
            for k in knobs
        ],
        return_annotation=PipelineOutputs,
    )
    args = "\n".join(f"    {k.name}: {k.doc}" for k in knobs)
    pipeline.__doc__ = f"{inspect.getdoc(body)}\n\nArgs:\n{args}\n"
    pipeline.__name__ = pipeline.__qualname__ = PIPELINE_NAME.replace("-", "_")
    return pipeline


def _task(component: Any, knobs: dict[str, Any], name: str, **inputs: Any) -> Any:
    """The task ``name`` of ``component``: each input named like a pipeline knob gets that knob, the rest come from
    ``inputs`` (upstream outputs, loop items). Its caching and retry policy follow :data:`CACHED` and
    :data:`RETRIED`."""
    names = component.component_spec.inputs or {}
    task = component(**{n: knobs[n] for n in names if n in knobs and n not in inputs}, **inputs)
    task.set_display_name(name).set_caching_options(name in CACHED)
    if name in RETRIED:
        task.set_retry(**RETRY)
    return task


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Train model families side by side (XGBoost, MLP, their blend), pick the best on validation, audit "
    "and promote it; the champion is served by KServe.",
)
@_with_knob_signature
def fraud_pipeline(knobs: dict[str, Any]) -> PipelineOutputs:
    """load -> {train family, ...} -> select -> {poison sweep, fairness, drift} -> evaluate-and-promote -> deploy;
    report.

    Every parameter is a knob declared in ``fraud_detection.config``; each task input named like one gets it.
    """
    load = _task(load_data, knobs, "load")
    windows = {f"{name}_data": load.outputs[f"{name}_data"] for name in ("train", "validation", "test")}
    with dsl.ParallelFor(items=knobs["families"]) as family:
        trained = _task(
            train_family,
            knobs,
            "train-family",
            family=family,
            train_data=windows["train_data"],
            validation_data=windows["validation_data"],
            data_version=load.outputs["data_version"],
        )
    train = _task(
        select_model,
        knobs,
        "select",
        **windows,
        family_models=dsl.Collected(trained.outputs["model"]),
        data_version=load.outputs["data_version"],
        oracle_label_noise=load.outputs["oracle_label_noise"],
    )
    model = train.outputs["model"]
    with dsl.ParallelFor(items=knobs["poison_levels"]) as level:
        attacked = _task(
            poison_level,
            knobs,
            "poison-level",
            **windows,
            model=model,
            level=level,
        )
    poison = _task(
        poison_collect,
        knobs,
        "poison-sweep",
        results=dsl.Collected(attacked.output),
        data_version=load.outputs["data_version"],
    )
    fairness = _task(fairness_audit, knobs, "fairness", test_data=windows["test_data"], model=model)
    drift = _task(
        drift_check,
        knobs,
        "drift",
        reference_data=windows["train_data"],
        current_data=load.outputs["current_data"],
        model=model,
    )
    promote = _task(
        evaluate_and_promote,
        knobs,
        "evaluate-and-promote",
        model=model,
        test_data=windows["test_data"],
        equalized_odds_difference=fairness.outputs["equalized_odds_difference"],
        robust_fraction=poison.outputs["robust_fraction"],
    )
    promote.after(drift)
    with dsl.If(promote.outputs["Output"] == True):  # noqa: E712
        _task(deploy_model, knobs, "deploy", decision=promote.outputs["decision"])
    report = _task(
        run_report,
        knobs,
        "report",
        data_summary=load.outputs["summary"],
        test_data=windows["test_data"],
        model=model,
        train_metrics=train.outputs["metrics"],
        poison_table=poison.outputs["table"],
        poison_report=poison.outputs["report"],
        fairness_metrics=fairness.outputs["metrics"],
        fairness_summary=fairness.outputs["summary"],
        fairness_report=fairness.outputs["report"],
        drift_metrics=drift.outputs["metrics"],
        drift_report=drift.outputs["report"],
        decision=promote.outputs["decision"],
    )
    return PipelineOutputs(
        data_summary=load.outputs["summary"],
        test_data=windows["test_data"],
        model=model,
        train_metrics=train.outputs["metrics"],
        bakeoff=train.outputs["bakeoff"],
        poison_report=poison.outputs["report"],
        poison_metrics=poison.outputs["metrics"],
        poison_table=poison.outputs["table"],
        fairness_report=fairness.outputs["report"],
        fairness_metrics=fairness.outputs["metrics"],
        fairness_summary=fairness.outputs["summary"],
        drift_report=drift.outputs["report"],
        drift_metrics=drift.outputs["metrics"],
        decision=promote.outputs["decision"],
        run_report=report.outputs["report"],
        run_summary=report.outputs["summary"],
    )
