"""The pipeline DAG. Its parameters are the knobs of ``fraud_detection.config`` (``fraud run --help`` lists them).

Each task call names what it gets: its upstream outputs and its knobs, a knob group at a time
(``**knobs.group(GateKnobs)``) or one knob by name (``seed=knobs.seed``); caching and retries are set at the call.
KFP refuses, when the pipeline is compiled, a call that misses one of the component's inputs or passes one it
does not have, so the groups named at a task are exactly the knob inputs of its component.
"""

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
from fraud_detection.config import (
    DataKnobs,
    DeployKnobs,
    GateKnobs,
    KnobGroup,
    ScaleKnobs,
    TrackingKnobs,
    TrainKnobs,
    pipeline_knobs,
)

PIPELINE_NAME = "fraud-detection"

RETRIED = ("train-family", "select", "poison-sweep", "fairness", "drift", "evaluate-and-promote", "deploy", "report")
"""Tasks retried on failure (``.set_retry(**RETRY)`` at their call; a test holds the compiled YAML to this list):
what they write outside KFP is safe to write twice (a second MLflow run; promotion's idempotent registration,
immutable exports and compare-and-set move; deploy follows the champion pointer; the report only renders its
inputs). ``load`` and ``poison-level`` fail for reasons a retry does not change (bad data, a bug)."""
RETRY = {"num_retries": 2, "backoff_duration": "30s", "backoff_factor": 2.0, "backoff_max_duration": "300s"}
CACHED = ("poison-level",)
"""Tasks KFP may answer from its cache (``.set_caching_options(True)`` at their call): pure functions of their
inputs. Every other task reads data that can change under the same URI (``load``) or writes to MLflow, the registry
or the cluster, so it always runs."""


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


class Knobs:
    """The pipeline's parameters, one KFP placeholder per knob: ``knobs.seed`` is one knob, ``knobs.group(G)`` the
    knobs of group ``G`` by name, to pass to a task as ``**knobs.group(G)``."""

    def __init__(self, placeholders: dict[str, Any]) -> None:
        self._placeholders = placeholders

    def __getattr__(self, name: str) -> Any:
        try:
            return self._placeholders[name]
        except KeyError:
            raise AttributeError(f"no pipeline knob named {name!r}") from None

    def group(self, group: type[KnobGroup], *, without: tuple[str, ...] = ()) -> dict[str, Any]:
        """Every knob of ``group`` but those ``without`` names, by name."""
        return {name: self._placeholders[name] for name in group.model_fields if name not in without}


def _with_knob_signature(body: Callable[[Knobs], PipelineOutputs]) -> Callable[..., PipelineOutputs]:
    """Give ``body`` the pipeline's signature and parameter docs, generated from the knob declarations.

    KFP reads a pipeline's parameters from its signature (and their descriptions from its docstring's Args),
    then calls it with one placeholder per parameter, in order. The wrapper hands ``body`` those placeholders
    as :class:`Knobs`.
    """
    knobs = pipeline_knobs()

    def pipeline(*values: Any) -> PipelineOutputs:
        return body(Knobs(dict(zip((k.name for k in knobs), values, strict=True))))

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


@dsl.pipeline(
    name=PIPELINE_NAME,
    description="Train model families side by side (XGBoost, MLP, their blend), pick the best on validation, audit "
    "and promote it; the champion is served by KServe.",
)
@_with_knob_signature
def fraud_pipeline(knobs: Knobs) -> PipelineOutputs:
    """load -> {train family, ...} -> select -> {poison sweep, fairness, drift} -> evaluate-and-promote -> deploy;
    report.

    Every parameter is a knob declared in ``fraud_detection.config``.
    """
    load = load_data(
        **knobs.group(DataKnobs),
        engine=knobs.engine,
        dask_scheduler_address=knobs.dask_scheduler_address,
        dask_workers=knobs.dask_workers,
        # load checks the rules over several knobs before any work; this one spans two groups
        poison_levels=knobs.poison_levels,
        robustness_level=knobs.robustness_level,
    )
    load.set_display_name("load").set_caching_options(False)
    windows = {f"{name}_data": load.outputs[f"{name}_data"] for name in ("train", "validation", "test")}
    with dsl.ParallelFor(items=knobs.families) as family:
        trained = train_family(
            family=family,
            train_data=windows["train_data"],
            validation_data=windows["validation_data"],
            data_version=load.outputs["data_version"],
            **knobs.group(TrainKnobs, without=("families",)),  # the loop hands each task its family
            **knobs.group(ScaleKnobs),
        )
        trained.set_display_name("train-family").set_caching_options(False).set_retry(**RETRY)
    train = select_model(
        **windows,
        family_models=dsl.Collected(trained.outputs["model"]),
        data_version=load.outputs["data_version"],
        oracle_label_noise=load.outputs["oracle_label_noise"],
        oracle_test_auprc=load.outputs["oracle_test_auprc"],
        synthetic_setting=knobs.synthetic_setting,
        threshold_beta=knobs.threshold_beta,
        seed=knobs.seed,
        card_precision_k=knobs.card_precision_k,
        **knobs.group(TrackingKnobs),
    )
    train.set_display_name("select").set_caching_options(False).set_retry(**RETRY)
    model = train.outputs["model"]
    with dsl.ParallelFor(items=knobs.poison_levels) as level:
        attacked = poison_level(**windows, model=model, level=level, poison_kinds=knobs.poison_kinds, seed=knobs.seed)
        attacked.set_display_name("poison-level").set_caching_options(True)
    poison = poison_collect(
        results=dsl.Collected(attacked.output),
        data_version=load.outputs["data_version"],
        robustness_level=knobs.robustness_level,
        **knobs.group(TrackingKnobs),
    )
    poison.set_display_name("poison-sweep").set_caching_options(False).set_retry(**RETRY)
    fairness = fairness_audit(
        test_data=windows["test_data"],
        model=model,
        sensitive_column=knobs.sensitive_column,
        **knobs.group(TrackingKnobs),
    )
    fairness.set_display_name("fairness").set_caching_options(False).set_retry(**RETRY)
    drift = drift_check(
        reference_data=windows["train_data"],
        current_data=load.outputs["current_data"],
        model=model,
        drift_data_uri=knobs.drift_data_uri,
        sensitive_column=knobs.sensitive_column,
        **knobs.group(TrackingKnobs),
    )
    drift.set_display_name("drift").set_caching_options(False).set_retry(**RETRY)
    promote = evaluate_and_promote(
        model=model,
        test_data=windows["test_data"],
        equalized_odds_difference=fairness.outputs["equalized_odds_difference"],
        robust_fraction=poison.outputs["robust_fraction"],
        **knobs.group(GateKnobs),
        registered_model_name=knobs.registered_model_name,
        serving_root=knobs.serving_root,
        mlflow_tracking_uri=knobs.mlflow_tracking_uri,
    )
    promote.set_display_name("evaluate-and-promote").set_caching_options(False).set_retry(**RETRY)
    promote.after(drift)
    with dsl.If(promote.outputs["Output"] == True):  # noqa: E712
        deploy = deploy_model(
            decision=promote.outputs["decision"],
            **knobs.group(DeployKnobs, without=("registered_model_name",)),  # the champion is found by its pointer
        )
        deploy.set_display_name("deploy").set_caching_options(False).set_retry(**RETRY)
    # What the run report reads is also what the pipeline returns (with the report and what it leaves out).
    reported = dict(
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
    report = run_report(
        **reported,
        data_uri=knobs.data_uri,
        registered_model_name=knobs.registered_model_name,
        **knobs.group(TrackingKnobs),
    )
    report.set_display_name("report").set_caching_options(False).set_retry(**RETRY)
    return PipelineOutputs(
        **reported,
        bakeoff=train.outputs["bakeoff"],
        poison_metrics=poison.outputs["metrics"],
        run_report=report.outputs["report"],
        run_summary=report.outputs["summary"],
    )
