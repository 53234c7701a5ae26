"""Every pipeline knob, declared once: its name, type, default and a one-line doc.

The knobs come in groups, each a frozen dataclass that the library step using it takes as its config. From
these declarations the project derives the rest:

* the pipeline's signature and its parameter descriptions (``pipelines/pipeline.py``);
* the ``fraud run`` options (``cli/main.py``);
* which pipeline parameter each component input receives (by name; a test checks every component's knob
  inputs against the declarations, type for type).

Adding a knob is one declaration here plus the parameter in the component that reads it. Rules that span
several knobs are checked once, by :func:`check_parameters`, before anything runs.

This module is light on purpose (standard library only): the CLI, the pipeline and the serving image may
import it without pulling in the data or training stack.
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import MISSING, dataclass, field, fields
from typing import Any, ClassVar, Self, get_type_hints

from fraud_detection.families import FAMILIES
from fraud_detection.schema import DEFAULT_SENSITIVE_COLUMN, PUBLIC_DATASET_ROWS

SYNTHETIC_URI = "synthetic"
"""The ``data_uri`` that selects the built-in seeded generator instead of a file."""

POISON_KINDS: tuple[str, ...] = ("random", "targeted")
"""The label-flip attacks the poison sweep knows."""

SYNTHETIC_SETTINGS: tuple[str, ...] = ("axis", "rotated")
"""Where the built-in generator puts fraud: boxes along feature axes, or oblique corners (``synth`` module doc)."""

DEPLOY_TARGETS: tuple[str, ...] = ("kserve", "local")
"""Where the deploy step puts a new champion."""

ENGINES: tuple[str, ...] = ("local", "dask")
"""``local``: load and train hold the data in one process. ``dask``: they run on a Dask cluster."""


class ConfigError(ValueError):
    """One or more parameters are invalid; the message names each parameter at fault."""


@dataclass(frozen=True)
class Knob:
    """One knob as the pipeline, the CLI and the checks see it."""

    name: str
    type: type
    default: Any
    doc: str
    group: str
    minimum: float | None = None
    maximum: float | None = None
    exclusive_minimum: bool = False
    choices: tuple[str, ...] = ()
    """For a string knob, the allowed values; for a list of strings, the allowed items."""


def knob(
    default: Any,
    doc: str,
    *,
    minimum: float | None = None,
    maximum: float | None = None,
    exclusive_minimum: bool = False,
    choices: Sequence[str] = (),
) -> Any:
    """Declare a knob as a dataclass field: its default, its one-line doc and the values it allows.

    ``minimum``/``maximum`` bound a number (or every item of a list of numbers); ``choices`` lists the allowed
    strings (or items of a list of strings).
    """
    metadata = {
        "doc": doc,
        "minimum": minimum,
        "maximum": maximum,
        "exclusive_minimum": exclusive_minimum,
        "choices": tuple(choices),
    }
    if isinstance(default, list):
        frozen = tuple(default)
        return field(default_factory=lambda: list(frozen), metadata=metadata)
    return field(default=default, metadata=metadata)


class KnobGroup:
    """Base of every knob group: lists its knobs and builds itself from a mapping of named values."""

    title: ClassVar[str] = ""

    @classmethod
    def knobs(cls) -> list[Knob]:
        """The group's knobs, in declaration order (fields without a knob doc are internal, not knobs)."""
        hints = get_type_hints(cls)
        out = []
        for f in fields(cls):  # type: ignore[arg-type]
            if "doc" not in f.metadata:
                continue
            default = f.default_factory() if f.default is MISSING else f.default  # type: ignore[operator]
            kind = hints[f.name]
            out.append(
                Knob(
                    name=f.name,
                    type=getattr(kind, "__origin__", kind),
                    default=default,
                    doc=f.metadata["doc"],
                    group=cls.title or cls.__name__,
                    minimum=f.metadata["minimum"],
                    maximum=f.metadata["maximum"],
                    exclusive_minimum=f.metadata["exclusive_minimum"],
                    choices=f.metadata["choices"],
                )
            )
        return out

    @classmethod
    def pick(cls, values: Mapping[str, Any]) -> Self:
        """The group built from those of ``values`` that name its fields (a component passes ``locals()``)."""
        names = {f.name for f in fields(cls)}  # type: ignore[arg-type]
        return cls(**{k: v for k, v in values.items() if k in names})


@dataclass(frozen=True)
class SplitFractions:
    """Shares of the time axis (by row count) for each window; ``current`` gets the rest."""

    train: float
    validation: float
    test: float

    def __post_init__(self) -> None:
        parts = (self.train, self.validation, self.test)
        if any(p <= 0 for p in parts) or sum(parts) > 1.0 - 1e-9:
            raise ConfigError(
                "train_fraction, validation_fraction and test_fraction must be positive and leave room for the "
                f"current window: {self.train} + {self.validation} + {self.test} = {sum(parts):.2f} (must be < 1)"
            )

    @property
    def current(self) -> float:
        """The share left for the latest ("current") window."""
        return 1.0 - self.train - self.validation - self.test


@dataclass(frozen=True)
class DataKnobs(KnobGroup):
    """Where the data comes from and how it is split by time."""

    title: ClassVar[str] = "data"
    data_uri: str = knob(SYNTHETIC_URI, 'CSV/Parquet path or gs:// URI in the credit-card schema, or "synthetic".')
    sensitive_column: str = knob(
        DEFAULT_SENSITIVE_COLUMN, 'column audited for fairness; never a model feature ("" for none).'
    )
    synthetic_rows: int = knob(PUBLIC_DATASET_ROWS, 'rows generated when data_uri is "synthetic".', minimum=1)
    synthetic_seed: int = knob(42, "generator seed.")
    synthetic_setting: str = knob(
        "axis",
        'fraud regions of synthetic data: "axis" (boxes along features) or "rotated" (oblique corners).',
        choices=SYNTHETIC_SETTINGS,
    )
    synthetic_drift: float = knob(
        0.0, "covariate drift strength in the latest window of synthetic data (0 = none).", minimum=0
    )
    train_fraction: float = knob(
        0.60, "share of rows (by time) in the training window.", minimum=0, exclusive_minimum=True
    )
    validation_fraction: float = knob(
        0.15, "share in the validation window (early stopping, threshold).", minimum=0, exclusive_minimum=True
    )
    test_fraction: float = knob(
        0.15, 'share in the test window; the rest is the "current" window.', minimum=0, exclusive_minimum=True
    )

    @property
    def fractions(self) -> SplitFractions:
        """The three window shares, checked to leave room for the current window."""
        return SplitFractions(self.train_fraction, self.validation_fraction, self.test_fraction)


@dataclass(frozen=True)
class TrainKnobs(KnobGroup):
    """The model families of the bake-off, their hyper-parameters and the decision threshold rule."""

    title: ClassVar[str] = "train"
    families: list[str] = knob(
        list(FAMILIES),
        "model families trained side by side (one task each); with two or more, their blend is a candidate too.",
        choices=FAMILIES,
    )
    max_depth: int = knob(6, "XGBoost tree depth.", minimum=1)
    learning_rate: float = knob(0.1, "XGBoost eta.", minimum=0, exclusive_minimum=True)
    n_rounds: int = knob(300, "maximum boosting rounds.", minimum=1)
    early_stopping_rounds: int = knob(50, "stop after this many rounds without validation AUPRC gain.", minimum=1)
    subsample: float = knob(0.8, "row subsampling per tree.", minimum=0, maximum=1, exclusive_minimum=True)
    colsample_bytree: float = knob(0.8, "column subsampling per tree.", minimum=0, maximum=1, exclusive_minimum=True)
    min_child_weight: float = knob(1.0, "minimum hessian weight in a leaf.", minimum=0)
    scale_pos_weight: float = knob(0.0, "weight of fraud rows; 0 = sqrt(negatives/positives).", minimum=0)
    threshold_beta: float = knob(
        1.0, "the decision threshold maximises F-beta on validation.", minimum=0, exclusive_minimum=True
    )
    seed: int = knob(42, "training seed (also seeds the poison sweep).")
    mlp_hidden_units: list[int] = knob([64, 32], "MLP hidden layer widths.", minimum=1)
    mlp_max_epochs: int = knob(30, "MLP: most epochs over the training window.", minimum=1)
    mlp_patience: int = knob(4, "MLP: stop after this many epochs without validation AUPRC gain.", minimum=1)


@dataclass(frozen=True)
class ScaleKnobs(KnobGroup):
    """Where load and train run, and how much of the legitimate training data they use."""

    title: ClassVar[str] = "scale"
    engine: str = knob(
        "local",
        "local (one process holds the data) or dask (the load and XGBoost's training on a Dask cluster; docs/dask.md).",
        choices=ENGINES,
    )
    dask_scheduler_address: str = knob(
        "", 'engine=dask: a running scheduler (tcp://host:8786); "" = create one (operator on GKE, else local).'
    )
    dask_workers: int = knob(2, "engine=dask: workers of a created cluster.", minimum=1)
    negative_sample_rate: float = knob(
        1.0,
        "share of legitimate training rows kept, weighted by its inverse (1 = all; every fraud is kept).",
        minimum=0,
        maximum=1,
        exclusive_minimum=True,
    )


@dataclass(frozen=True)
class AuditKnobs(KnobGroup):
    """The poison sweep and the drift check."""

    title: ClassVar[str] = "audits"
    poison_levels: list[float] = knob(
        [0.0, 0.01, 0.02, 0.05, 0.10, 0.20],
        "shares of training labels flipped in the poison sweep (one task per level; must include 0).",
        minimum=0,
        maximum=0.5,
    )
    poison_kinds: list[str] = knob(
        list(POISON_KINDS),
        "label-flip attacks: random (stratified by class) and targeted (fraud hidden as legitimate).",
        choices=POISON_KINDS,
    )
    drift_data_uri: str = knob("", 'data set to check for drift against the training window ("" = the current window).')


@dataclass(frozen=True)
class GateKnobs(KnobGroup):
    """The promotion gates' bounds."""

    title: ClassVar[str] = "gates"
    auprc_tolerance: float = knob(0.005, "promote only if candidate AUPRC >= champion AUPRC - this.", minimum=0)
    min_auprc_over_baseline: float = knob(
        1.25,
        "quality floor: candidate AUPRC >= this x the logistic-regression baseline's (same test window).",
        minimum=0,
    )
    min_auprc_over_fraud_rate: float = knob(
        10.0, "quality floor: candidate AUPRC >= this x the test fraud rate (a random score's AUPRC).", minimum=0
    )
    max_equalized_odds_difference: float = knob(0.25, "fairness gate bound.", minimum=0, maximum=1)
    robustness_level: float = knob(
        0.05, "poisoning level at which the robustness gate is measured (one of poison_levels).", minimum=0
    )
    robust_fraction_tolerance: float = knob(
        0.05,
        "robustness gate: share of clean AUPRC kept at that level >= the champion's share - this.",
        minimum=0,
        maximum=1,
    )
    min_robust_fraction: float = knob(
        0.5,
        "robustness gate without a champion: share of clean AUPRC kept at that level >= this.",
        minimum=0,
        maximum=1,
    )


@dataclass(frozen=True)
class DeployKnobs(KnobGroup):
    """Where a promoted champion is registered, exported and served."""

    title: ClassVar[str] = "registry and deploy"
    registered_model_name: str = knob(
        "fraud-detector", "MLflow registered model holding the champion and challenger aliases."
    )
    serving_root: str = knob(
        "gs://fraud-detection-models/serving",
        "local folder or gs:// prefix where promoted versions are exported as v<N>.",
    )
    deploy_target: str = knob(
        "kserve",
        "kserve (create/update the InferenceService) or local (the export is the deployment).",
        choices=DEPLOY_TARGETS,
    )
    isvc_name: str = knob("fraud-champion", "InferenceService name.")
    isvc_namespace: str = knob("fraud", "InferenceService namespace.")
    serving_image: str = knob(
        "fraud-detection-serving:0.1.0", "serving image, used only when the InferenceService does not exist yet."
    )
    canary_traffic_percent: int = knob(
        0, "share of traffic for a new champion first (Knative mode; 0 = all at once).", minimum=0, maximum=100
    )


@dataclass(frozen=True)
class TrackingKnobs(KnobGroup):
    """The MLflow server every step logs to."""

    title: ClassVar[str] = "tracking"
    mlflow_tracking_uri: str = knob(
        "http://mlflow.mlflow.svc.cluster.local:5000", "MLflow tracking server (fraud run passes a local SQLite file)."
    )
    mlflow_experiment: str = knob("fraud-detection", "MLflow experiment name.")


PIPELINE_GROUPS: tuple[type[KnobGroup], ...] = (
    DataKnobs,
    ScaleKnobs,
    TrainKnobs,
    AuditKnobs,
    GateKnobs,
    DeployKnobs,
    TrackingKnobs,
)
"""Every group of pipeline knobs, in the order the pipeline signature lists them."""


def pipeline_knobs() -> list[Knob]:
    """Every pipeline knob, in signature order."""
    return [k for group in PIPELINE_GROUPS for k in group.knobs()]


def defaults() -> dict[str, Any]:
    """Each pipeline knob's default, by name."""
    return {k.name: k.default for k in pipeline_knobs()}


def _type_problem(knob: Knob, value: Any) -> str:
    """Why ``value`` does not fit ``knob`` (type, bounds, choices), or ""."""
    if knob.type is list:
        if not isinstance(value, list) or not value:
            return f"{knob.name} must be a non-empty list, got {value!r}"
        problems = [_item_problem(knob, item) for item in value]
        return next((p for p in problems if p), "")
    return _item_problem(knob, value)


def _item_problem(knob: Knob, value: Any) -> str:
    element = (type(knob.default[0]) if knob.default else str) if knob.type is list else knob.type
    where = f"{knob.name} item" if knob.type is list else knob.name
    if element is float:
        if isinstance(value, bool) or not isinstance(value, int | float) or not math.isfinite(value):
            return f"{where} must be a number, got {value!r}"
    elif element is int:
        if isinstance(value, bool) or not isinstance(value, int):
            return f"{where} must be a whole number, got {value!r}"
    elif element is str:
        if not isinstance(value, str):
            return f"{where} must be text, got {value!r}"
        if knob.choices and value not in knob.choices:
            return f"{where} must be one of {', '.join(knob.choices)}, got {value!r}"
        return ""
    elif not isinstance(value, element):
        return f"{where} must be {element.__name__}, got {value!r}"
    if knob.minimum is not None:
        if knob.exclusive_minimum and value <= knob.minimum:
            return f"{where} must be > {knob.minimum:g}, got {value!r}"
        if value < knob.minimum:
            return f"{where} must be >= {knob.minimum:g}, got {value!r}"
    if knob.maximum is not None and value > knob.maximum:
        return f"{where} must be <= {knob.maximum:g}, got {value!r}"
    return ""


def _levels_text(levels: Iterable[float]) -> str:
    return "[" + ", ".join(f"{level:g}" for level in levels) + "]"


def parameter_problems(values: Mapping[str, Any]) -> list[str]:
    """Every problem with a set of pipeline parameters (missing ones take their defaults), each naming the
    parameters at fault: unknown names, types, bounds, choices, and the rules that span knobs."""
    knobs = {k.name: k for k in pipeline_knobs()}
    unknown = sorted(set(values) - set(knobs))
    problems = [f"unknown parameter {name!r}" for name in unknown]
    merged = {**defaults(), **{k: v for k, v in values.items() if k in knobs}}
    for name, knob_ in knobs.items():
        problem = _type_problem(knob_, merged[name])
        if problem:
            problems.append(problem)
    if problems:
        return problems
    try:
        DataKnobs.pick(merged).fractions  # noqa: B018  (checks the fractions)
    except ConfigError as error:
        problems.append(str(error))
    levels = [float(level) for level in merged["poison_levels"]]
    if len(set(levels)) != len(levels):
        problems.append(f"poison_levels has repeated levels: {_levels_text(levels)}")
    if 0.0 not in levels:
        problems.append(
            f"poison_levels must include 0 (the clean baseline every attack is compared with), "
            f"got {_levels_text(levels)}"
        )
    robustness = float(merged["robustness_level"])
    if robustness <= 0 or not any(math.isclose(robustness, level, abs_tol=1e-12) for level in levels):
        problems.append(
            f"robustness_level {robustness:g} must be one of the non-zero poison_levels "
            f"{_levels_text(level for level in levels if level > 0)}: the robustness gate is measured there"
        )
    return problems


def check_parameters(values: Mapping[str, Any]) -> dict[str, Any]:
    """All pipeline parameters (defaults filled in) if ``values`` are valid.

    Raises:
        ConfigError: naming every parameter at fault, one problem per line.
    """
    problems = parameter_problems(values)
    if problems:
        raise ConfigError("invalid pipeline parameters:\n  " + "\n  ".join(problems))
    return {**defaults(), **values}
