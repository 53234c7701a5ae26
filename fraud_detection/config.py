"""Every pipeline knob, declared once: its name, kind, default, bounds or choices, and a one-line doc.

The knobs come in groups, each a frozen pydantic model that the library step using it takes as its config:
``Field`` bounds, ``Literal`` choices, the description as its doc, validators for rules over several knobs, and
the value kinds of :mod:`fraud_detection.parsers`. The pipeline signature (``pipelines/pipeline.py``) and the
``fraud run`` options are derived from them; ``fraud run``, ``fraud submit`` and the load step check a run's
parameters with :func:`check_parameters`. Adding a knob: its declaration here, the parameter of the component that
reads it, and its argument at that task in ``pipelines/pipeline.py``.

Light on purpose (pydantic and the standard library): the CLI, the pipeline and the serving image import it.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping
from typing import TYPE_CHECKING, Annotated, Any, ClassVar, Literal, Self, cast, get_args

from pydantic import BaseModel, ConfigDict, Field, ValidationError, field_validator, model_validator

from fraud_detection.knob import ConfigError, Knob
from fraud_detection.parsers import (
    Count,
    ListOf,
    NonNegative,
    Number,
    Positive,
    PositiveShare,
    Share,
    Text,
    Whole,
    choices_of,
    kind_of,
    problem,
)
from fraud_detection.schema import DEFAULT_SENSITIVE_COLUMN, PUBLIC_DATASET_ROWS
from fraud_detection.splits import SplitFractions

SYNTHETIC_URI = "synthetic"
"""The ``data_uri`` that selects the built-in seeded generator instead of a file."""

SYNTHETIC_TRANSACTIONS_URI = "synthetic-transactions"
"""The ``data_uri`` that selects the built-in raw-transaction generator (customers paying at terminals)."""

FEATURE_SET_NAMES: tuple[str, ...] = ("card_terminal", "paysim")
"""The built-in feature sets the ``feature_set`` knob names (any other value is a FeatureSet JSON file)."""

FamilyName = Literal["xgboost", "mlp"]
"""A family the bake-off trains: the names of ``fraud_detection.families.FAMILIES`` (a test holds them equal)."""

PoisonKind = Literal["random", "targeted"]
POISON_KINDS: tuple[str, ...] = get_args(PoisonKind)
"""The label-flip attacks the poison sweep knows."""

SyntheticSetting = Literal["axis", "rotated"]
SYNTHETIC_SETTINGS: tuple[str, ...] = get_args(SyntheticSetting)
"""Where the built-in generator puts fraud: boxes along feature axes, or oblique corners (``synth`` module doc)."""

DeployTarget = Literal["kserve", "local"]
DEPLOY_TARGETS: tuple[str, ...] = get_args(DeployTarget)
"""Where the deploy step puts a new champion."""

Engine = Literal["local", "dask"]
ENGINES: tuple[str, ...] = get_args(Engine)
"""``local``: load and train hold the data in one process. ``dask``: they run on a Dask cluster."""


def _problems(error: ValidationError) -> list[str]:
    """Each of ``error``'s problems as one line naming the parameters at fault.

    A group built inside another model (pydantic calls the group's ``__init__``) raises :class:`ConfigError`,
    which pydantic hands back wrapped as a value error: its problems are taken as they are.
    """
    choices = {k.name: k.choices for k in pipeline_knobs() if k.choices}
    found: list[str] = []
    for detail in error.errors():
        cause = detail.get("ctx", {}).get("error")
        found += cause.problems if isinstance(cause, ConfigError) else [problem(detail, choices)]
    return found


class KnobGroup(BaseModel):
    """Base of every knob group: frozen, no unknown names, and its fields listed as :class:`Knob`\\ s.

    Building a group with a value out of bounds raises :class:`ConfigError` naming the knob.
    """

    model_config = ConfigDict(frozen=True, extra="forbid")
    title: ClassVar[str] = ""

    if not TYPE_CHECKING:  # type checkers keep the signature pydantic generates from the fields

        def __init__(self, **values: Any) -> None:
            try:
                super().__init__(**values)
            except ValidationError as error:
                raise ConfigError(*_problems(error)) from None

    @classmethod
    def knobs(cls) -> list[Knob]:
        """The group's knobs, in declaration order."""
        return [
            Knob(
                name=name,
                type=kind_of(field.annotation),
                default=field.get_default(call_default_factory=True),
                doc=field.description or "",
                group=cls.title or cls.__name__,
                choices=choices_of(field.annotation),
                annotation=Annotated[(field.annotation, *field.metadata)] if field.metadata else field.annotation,
            )
            for name, field in cls.model_fields.items()
        ]


class DataKnobs(KnobGroup):
    """Where the data comes from and how it is split by time."""

    title: ClassVar[str] = "data"
    data_uri: Text = Field(
        default=SYNTHETIC_URI,
        description="CSV/Parquet path or gs:// URI (credit-card schema, or raw transactions with data_mapping), "
        '"synthetic", or "synthetic-transactions" (raw transactions, docs/transactions.md).',
    )
    data_mapping: Text = Field(
        default="",
        description='raw transactions: "paysim", "customer_terminal" or a mapping file (YAML/JSON); "" = the '
        "credit-card schema.",
    )
    feature_set: Text = Field(
        default="",
        description='raw transactions: "paysim", "card_terminal" or a FeatureSet JSON file; "" = the mapping\'s '
        "default (docs/features.md).",
    )
    sensitive_column: Text = Field(
        default=DEFAULT_SENSITIVE_COLUMN,
        description='column audited for fairness; never a model feature ("" for none).',
    )
    synthetic_rows: Count = Field(
        default=PUBLIC_DATASET_ROWS,
        description='rows generated when data_uri is "synthetic" or "synthetic-transactions".',
    )
    synthetic_seed: Whole = Field(default=42, description="generator seed.")
    synthetic_setting: SyntheticSetting = Field(
        default="axis",
        description='fraud regions of synthetic data: "axis" (boxes along features) or "rotated" (oblique corners).',
    )
    synthetic_drift: NonNegative = Field(
        default=0.0, description="covariate drift strength in the latest window of synthetic data (0 = none)."
    )
    train_fraction: Positive = Field(default=0.60, description="share of rows (by time) in the training window.")
    validation_fraction: Positive = Field(
        default=0.15, description="share in the validation window (early stopping, threshold)."
    )
    test_fraction: Positive = Field(
        default=0.15, description='share in the test window; the rest is the "current" window.'
    )

    @property
    def transactions(self) -> bool:
        """Whether the data set is raw transactions (a mapping, or the transaction generator)."""
        return bool(self.data_mapping) or self.data_uri == SYNTHETIC_TRANSACTIONS_URI

    @model_validator(mode="after")
    def _fractions_leave_room_for_the_current_window(self) -> Self:
        self.fractions  # noqa: B018  (SplitFractions checks the shares)
        return self

    @property
    def fractions(self) -> SplitFractions:
        """The three window shares, checked to leave room for the current window."""
        return SplitFractions(self.train_fraction, self.validation_fraction, self.test_fraction)


class TrainKnobs(KnobGroup):
    """The model families of the bake-off, their hyper-parameters and the decision threshold rule."""

    title: ClassVar[str] = "train"
    families: ListOf[FamilyName] = Field(
        default=["xgboost", "mlp"],
        description="model families trained side by side (one task each); with two or more, their blend is a "
        "candidate too.",
    )
    max_depth: Count = Field(default=6, description="XGBoost tree depth.")
    learning_rate: Positive = Field(default=0.1, description="XGBoost eta.")
    n_rounds: Count = Field(default=300, description="maximum boosting rounds.")
    early_stopping_rounds: Count = Field(
        default=50, description="stop after this many rounds without validation AUPRC gain."
    )
    subsample: PositiveShare = Field(default=0.8, description="row subsampling per tree.")
    colsample_bytree: PositiveShare = Field(default=0.8, description="column subsampling per tree.")
    min_child_weight: NonNegative = Field(default=1.0, description="minimum hessian weight in a leaf.")
    scale_pos_weight: NonNegative = Field(
        default=0.0, description="weight of fraud rows; 0 = sqrt(negatives/positives)."
    )
    threshold_beta: Positive = Field(default=1.0, description="the decision threshold maximises F-beta on validation.")
    seed: Whole = Field(default=42, description="training seed (also seeds the poison sweep).")
    mlp_hidden_units: ListOf[Count] = Field(default=[64, 32], description="MLP hidden layer widths.")
    mlp_max_epochs: Count = Field(default=30, description="MLP: most epochs over the training window.")
    mlp_patience: Count = Field(
        default=4, description="MLP: stop after this many epochs without validation AUPRC gain."
    )
    tune_trials: Whole = Field(
        default=0,
        ge=0,
        description="tuning trials per family, scored on validation (Optuna TPE, docs/tuning.md); 0 = the settings "
        "above.",
    )
    tune_seconds: NonNegative = Field(
        default=0.0, description="tuning: stop starting trials after this many seconds per family (0 = no limit)."
    )


class MetricKnobs(KnobGroup):
    """How the bake-off's winner is measured besides AUPRC."""

    title: ClassVar[str] = "metrics"
    card_precision_k: Count = Field(
        default=100,
        description="raw transactions with a card key: cards an analyst reviews a day, for card precision@k.",
    )


class ScaleKnobs(KnobGroup):
    """Where load and train run, and how much of the legitimate training data they use."""

    title: ClassVar[str] = "scale"
    engine: Engine = Field(
        default="local",
        description="local (one process holds the data) or dask (the load and XGBoost's training on a Dask "
        "cluster; docs/dask.md).",
    )
    dask_scheduler_address: Text = Field(
        default="",
        description='engine=dask: a running scheduler (tcp://host:8786); "" = create one (operator on GKE, else '
        "local).",
    )
    dask_workers: Count = Field(default=2, description="engine=dask: workers of a created cluster.")
    negative_sample_rate: PositiveShare = Field(
        default=1.0,
        description="share of legitimate training rows kept, weighted by its inverse (1 = all; every fraud is kept).",
    )


class AuditKnobs(KnobGroup):
    """The poison sweep and the drift check."""

    title: ClassVar[str] = "audits"
    poison_levels: ListOf[Annotated[Number, Field(ge=0, le=0.5)]] = Field(
        default=[0.0, 0.01, 0.02, 0.05, 0.10, 0.20],
        description="shares of training labels flipped in the poison sweep (one task per level; must include 0).",
    )
    poison_kinds: ListOf[PoisonKind] = Field(
        default=["random", "targeted"],
        description="label-flip attacks: random (stratified by class) and targeted (fraud hidden as legitimate).",
    )
    drift_data_uri: Text = Field(
        default="", description='data set to check for drift against the training window ("" = the current window).'
    )

    @field_validator("poison_levels")
    @classmethod
    def _levels_are_distinct_and_include_the_clean_baseline(cls, levels: list[float]) -> list[float]:
        found = []
        if len(set(levels)) != len(levels):
            found.append(f"has repeated levels: {_levels_text(levels)}")
        if 0.0 not in levels:
            found.append(
                f"must include 0 (the clean baseline every attack is compared with), got {_levels_text(levels)}"
            )
        if found:
            raise ValueError("; poison_levels ".join(found))
        return levels


class GateKnobs(KnobGroup):
    """The promotion gates' bounds."""

    title: ClassVar[str] = "gates"
    auprc_tolerance: NonNegative = Field(
        default=0.005, description="promote only if candidate AUPRC >= champion AUPRC - this."
    )
    min_auprc_over_baseline: NonNegative = Field(
        default=1.25,
        description="quality floor: candidate AUPRC >= this x the logistic-regression baseline's (same test window).",
    )
    min_auprc_over_fraud_rate: NonNegative = Field(
        default=10.0,
        description="quality floor: candidate AUPRC >= this x the test fraud rate (a random score's AUPRC).",
    )
    max_equalized_odds_difference: Share = Field(default=0.25, description="fairness gate bound.")
    robustness_level: NonNegative = Field(
        default=0.05, description="poisoning level at which the robustness gate is measured (one of poison_levels)."
    )
    robust_fraction_tolerance: Share = Field(
        default=0.05,
        description="robustness gate: share of clean AUPRC kept at that level >= the champion's share - this.",
    )
    min_robust_fraction: Share = Field(
        default=0.5, description="robustness gate without a champion: share of clean AUPRC kept at that level >= this."
    )


class DeployKnobs(KnobGroup):
    """Where a promoted champion is registered, exported and served."""

    title: ClassVar[str] = "registry and deploy"
    registered_model_name: Text = Field(
        default="fraud-detector", description="MLflow registered model holding the champion and challenger aliases."
    )
    serving_root: Text = Field(
        default="gs://fraud-detection-models/serving",
        description="local folder or gs:// prefix where promoted versions are exported as v<N>.",
    )
    deploy_target: DeployTarget = Field(
        default="kserve",
        description="kserve (create/update the InferenceService) or local (the export is the deployment).",
    )
    isvc_name: Text = Field(default="fraud-champion", description="InferenceService name.")
    isvc_namespace: Text = Field(default="fraud", description="InferenceService namespace.")
    serving_image: Text = Field(
        default="fraud-detection-serving:0.1.0",
        description="serving image, used only when the InferenceService does not exist yet.",
    )
    canary_traffic_percent: Whole = Field(
        default=0,
        ge=0,
        le=100,
        description="share of traffic for a new champion first (Knative mode; 0 = all at once).",
    )


class TrackingKnobs(KnobGroup):
    """The MLflow server every step logs to."""

    title: ClassVar[str] = "tracking"
    mlflow_tracking_uri: Text = Field(
        default="http://mlflow.mlflow.svc.cluster.local:5000",
        description="MLflow tracking server (fraud run passes a local SQLite file).",
    )
    mlflow_experiment: Text = Field(default="fraud-detection", description="MLflow experiment name.")


class PipelineKnobs(BaseModel):
    """Every pipeline knob, group by group (in the order the pipeline signature lists them), and the rules that
    span groups."""

    model_config = ConfigDict(frozen=True, extra="forbid")
    data: DataKnobs = DataKnobs()
    scale: ScaleKnobs = ScaleKnobs()
    train: TrainKnobs = TrainKnobs()
    metrics: MetricKnobs = MetricKnobs()
    audits: AuditKnobs = AuditKnobs()
    gates: GateKnobs = GateKnobs()
    deploy: DeployKnobs = DeployKnobs()
    tracking: TrackingKnobs = TrackingKnobs()

    @model_validator(mode="after")
    def _robustness_level_is_a_poison_level(self) -> Self:
        levels, robustness = self.audits.poison_levels, self.gates.robustness_level
        if robustness <= 0 or not any(math.isclose(robustness, level, abs_tol=1e-12) for level in levels):
            raise ValueError(
                f"robustness_level {robustness:g} must be one of the non-zero poison_levels "
                f"{_levels_text(level for level in levels if level > 0)}: the robustness gate is measured there"
            )
        return self

    @classmethod
    def of(cls, values: Mapping[str, Any]) -> PipelineKnobs:
        """The knobs of a run from its parameters by name (missing ones take their defaults).

        Raises:
            ConfigError: naming every parameter at fault, one problem per line.
        """
        found, knobs = _validate(values)
        if knobs is None:
            raise ConfigError(*found)
        return knobs

    def values(self) -> dict[str, Any]:
        """Every knob's value, by name."""
        return {name: value for group in PIPELINE_GROUPS for name, value in getattr(self, group).model_dump().items()}


PIPELINE_GROUPS: dict[str, type[KnobGroup]] = {
    name: cast(type[KnobGroup], field.annotation) for name, field in PipelineKnobs.model_fields.items()
}
"""Every group of pipeline knobs by its name in :class:`PipelineKnobs`, in the order of the pipeline signature."""


def pipeline_knobs() -> list[Knob]:
    """Every pipeline knob, in signature order."""
    return [k for group in PIPELINE_GROUPS.values() for k in group.knobs()]


def defaults() -> dict[str, Any]:
    """Each pipeline knob's default, by name."""
    return {k.name: k.default for k in pipeline_knobs()}


def _levels_text(levels: Iterable[float]) -> str:
    return "[" + ", ".join(f"{level:g}" for level in levels) + "]"


def _validate(values: Mapping[str, Any]) -> tuple[list[str], PipelineKnobs | None]:
    """The problems with ``values`` (missing knobs take their defaults), and the knobs when there are none."""
    known = {k.name for k in pipeline_knobs()}
    found = [f"unknown parameter {name!r}" for name in sorted(set(values) - known)]
    groups: dict[str, KnobGroup] = {}
    for name, group in PIPELINE_GROUPS.items():
        try:
            groups[name] = group.model_validate({k: v for k, v in values.items() if k in group.model_fields})
        except ValidationError as error:
            found += _problems(error)
    if found:
        return found, None
    try:
        return [], PipelineKnobs.model_validate(groups)
    except ValidationError as error:
        return _problems(error), None


def parameter_problems(values: Mapping[str, Any]) -> list[str]:
    """Every problem with a set of pipeline parameters (missing ones take their defaults), each naming the
    parameters at fault: unknown names, kinds, bounds, choices, and the rules that span knobs."""
    return _validate(values)[0]


def check_parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """All pipeline parameters, parsed (``"0,0.05"`` becomes ``[0.0, 0.05]``) and with the defaults filled in,
    if ``values`` are valid (see :meth:`PipelineKnobs.of`)."""
    return PipelineKnobs.of(values).values()
