"""The evaluate-and-promote step: champion against candidate on one test window, gates, registry, compare-and-set.

:func:`promote_step` runs the rounds; each round reads the champion pointer and judges the candidate against it
(:meth:`Promotion.judge`), registers the candidate once, exports it once, and moves the pointer by
compare-and-set; :meth:`Promotion.record` then leaves the decision on the registry and the candidate's run.
"""

from __future__ import annotations

import logging
import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from functools import partial
from pathlib import Path
from typing import Any, TypeVar

import numpy as np

from fraud_detection import boosting, champion, data, modeldir, promotion, registry
from fraud_detection.config import GateKnobs
from fraud_detection.metrics import Run
from fraud_detection.monitoring.reference import REFERENCE_FILE
from fraud_detection.registry import CHALLENGER, CHAMPION, DEFAULT_RETRY, RetryPolicy

T = TypeVar("T")

log = logging.getLogger(__name__)


@dataclass
class PromoteStepResult:
    """The decision, its Markdown record, and where the champion is served from (if it moved)."""

    decision: Any
    markdown: str
    serving_uri: str


MOVE_ATTEMPTS = 3
"""How many times a promotion re-evaluates after losing the compare-and-set to another promotion."""


def auprc_on_test(model: Any, x_test: np.ndarray, y_test: np.ndarray) -> float:
    """A model's AUPRC on the test window (champion and candidate are scored by this one rule)."""
    from sklearn.metrics import average_precision_score

    return float(average_precision_score(y_test, boosting.predict_proba(model, x_test)))


@dataclass
class Promotion:
    """One candidate's promotion: what stays the same from round to round, and the registry it talks to."""

    candidate_dir: Path
    x_test: np.ndarray
    y_test: np.ndarray
    equalized_odds_difference: float | None
    robust_fraction: float | None
    gates_config: GateKnobs
    tracking_uri: str
    model_name: str
    serving_root: str
    retry: RetryPolicy
    candidate_meta: modeldir.ModelMetadata = field(init=False)
    candidate_auprc: float = field(init=False)
    mlflow_client: Any = field(init=False)

    def __post_init__(self) -> None:
        candidate_model, self.candidate_meta = modeldir.load_model_dir(self.candidate_dir)
        self.candidate_auprc = auprc_on_test(candidate_model, self.x_test, self.y_test)
        self.mlflow_client = registry.client(self.tracking_uri)

    @property
    def run_id(self) -> str:
        """The candidate's MLflow run ("" when it has none)."""
        return self.candidate_meta.mlflow_run_id or ""

    def call(self, what: str, operation: Callable[..., T], *args: Any) -> T:
        """A registry call, retried through a restarting tracking server."""
        return registry.retrying(what, operation, *args, policy=self.retry, where=self.tracking_uri)

    def judge(self, observed: champion.Observed) -> promotion.Decision:
        """Score the champion ``observed`` names on the same test window, apply the gates and decide."""
        import tempfile

        with tempfile.TemporaryDirectory(prefix="fraud-champion-") as tmp:
            current = _champion_model(observed, self.mlflow_client, self.model_name, Path(tmp), self.call)
            champion_auprc: float | None = None
            champion_robust: float | None = None
            identical = False
            if current is not None:
                champion_model, champion_meta = modeldir.load_model_dir(current.model_dir)
                _check_same_inputs(champion_meta, self.candidate_meta, current.version)
                champion_auprc = auprc_on_test(champion_model, self.x_test, self.y_test)
                if current.run_id:
                    champion_robust = self.call(
                        "read its robustness", _robust_fraction, self.mlflow_client, current.run_id
                    )
                identical = registry.same_model(self.candidate_dir, current.model_dir)
        inputs = promotion.GateInputs(
            candidate_auprc=self.candidate_auprc,
            champion_auprc=champion_auprc,
            baseline_auprc=self.candidate_meta.metrics.get(Run.BASELINE_LR_TEST_AUPRC),
            fraud_rate=float(self.y_test.mean()),
            equalized_odds_difference=self.equalized_odds_difference,
            robust_fraction=self.robust_fraction,
            champion_robust_fraction=champion_robust,
            family=self.candidate_meta.family,
        )
        gates = promotion.evaluate_gates(inputs, self.gates_config)
        return promotion.decide(
            gates, self.candidate_auprc, champion_auprc, current.version if current else None, identical
        )

    def register(self) -> str:
        """Register the candidate and point the ``challenger`` alias at it; returns its version."""
        tags = {"data_version": self.candidate_meta.data_version}
        version = self.call("register", registry.register, self.mlflow_client, self.model_name, self.run_id, tags)
        self.call("set alias challenger", registry.set_alias, self.mlflow_client, self.model_name, CHALLENGER, version)
        return version

    def export(self, version: str) -> str:
        """Export the candidate, stamped with its registry version, as ``{serving_root}/v{version}``."""
        return _export(self.candidate_dir, self.candidate_meta, self.model_name, self.serving_root, version)

    def record(self, decision: promotion.Decision, version: str | None, markdown: str) -> None:
        """After the last round: the ``champion`` alias follows the pointer, the version is tagged ``promoted``,
        and the decision, the candidate's robustness and its fairness number go on its run."""
        if champion.read(self.serving_root).champion is not None:
            registry.follow_pointer(
                self.mlflow_client, self.model_name, partial(_pointer_version, self.serving_root), self.retry
            )
        if version is not None:
            promoted = str(decision.promoted).lower()
            self.call(
                "tag the version",
                self.mlflow_client.set_model_version_tag,
                self.model_name,
                version,
                "promoted",
                promoted,
            )
        if self.run_id:
            self.call(
                "log the decision",
                _log_decision,
                self.mlflow_client,
                self.run_id,
                markdown,
                decision,
                self.robust_fraction,
            )
            self.call("log the audits", _log_audits, self.mlflow_client, self.run_id, self.equalized_odds_difference)


def promote_step(
    candidate_dir: Path,
    test_path: Path,
    equalized_odds_difference: float | None,
    robust_fraction: float | None,
    gates_config: GateKnobs,
    tracking_uri: str,
    model_name: str,
    serving_root: str,
    retry: RetryPolicy = DEFAULT_RETRY,
    move_attempts: int = MOVE_ATTEMPTS,
) -> PromoteStepResult:
    """Score champion and candidate on the same test window, apply the gates, register and maybe promote.

    The champion is the pointer of record (:mod:`fraud_detection.champion`). It moves by compare-and-set, only if
    it still names the champion the gates compared against; if another promotion moved it meanwhile, the
    candidate is scored and gated again against the new champion, up to ``move_attempts`` times. The ``champion``
    alias then follows the pointer. A failed gate, or a race lost, leaves the champion, its alias and its files as
    they were. A candidate identical to the champion is not registered again, and a step run twice for the same
    training run reuses its registered version (safe to retry).

    Args:
        candidate_dir: the train step's model directory.
        test_path: the test window (Parquet) both models are scored on.
        equalized_odds_difference: from the fairness step; None when the data has no sensitive attribute. It is
            recorded on the candidate's MLflow run as ``equalized_odds_difference``, so the controller's shadow
            promotion (``monitor/promote.py``) judges this version by the same fairness gate.
        robust_fraction: the share of its clean AUPRC the poison sweep keeps under the worst attack at
            ``gates_config.robustness_level``; None (not measured) fails the robustness gate. It is recorded on
            the candidate's MLflow run as ``robust_fraction``, the reference a later candidate is judged against.
        gates_config: the gate bounds.
        serving_root: local folder or ``gs://`` prefix under which promoted versions are exported.
        retry: how registry calls retry through a restarting tracking server.
        move_attempts: evaluations before giving up when other promotions keep moving the champion.
    """
    x_test, y_test = data.read_xy(test_path)
    run = Promotion(
        Path(candidate_dir),
        x_test,
        y_test,
        equalized_odds_difference,
        robust_fraction,
        gates_config,
        tracking_uri,
        model_name,
        serving_root,
        retry,
    )
    version: str | None = None
    serving_uri = ""
    moves: list[str] = []
    decision: promotion.Decision | None = None
    for _ in range(move_attempts):
        observed = champion.read(serving_root)
        champion.checkpoint("read")
        decision = run.judge(observed)
        champion.checkpoint("compared")
        if decision.identical_to_champion:
            break
        if version is None:
            version = run.register()
            champion.checkpoint("registered")
        decision.candidate_version = version
        if not decision.promoted:
            break
        if not serving_uri:
            serving_uri = run.export(version)
            champion.checkpoint("exported")
        try:
            champion.compare_and_set(serving_root, observed, champion.Champion(version, serving_uri, run.run_id))
            champion.checkpoint("moved")
            break
        except champion.ChampionMoved as moved:
            moves.append(moved.current.champion.version if moved.current.champion else "none")
            log.warning("promotion: %s; evaluating again against it", moved)
    else:
        assert decision is not None
        decision.promoted = False
        decision.reason = (
            f"the champion moved {len(moves)} times while this candidate was evaluated (to version(s) "
            f"{', '.join(moves)}); gave up, the champion stays as the other promotions left it"
        )
        moves = []
    assert decision is not None
    if moves:
        decision.reason += f" (evaluated again after the champion moved to version {moves[-1]})"
    if not decision.promoted:
        # An export made for a move that was lost stays unreferenced and immutable: it is not deleted, because a
        # retry of this same run may be about to move the champion to it.
        serving_uri = ""
    markdown = promotion.render_markdown(decision)
    run.record(decision, version, markdown)
    log.info("promotion: %s", decision.reason)
    return PromoteStepResult(decision=decision, markdown=markdown, serving_uri=serving_uri)


def _check_same_inputs(
    champion_meta: modeldir.ModelMetadata, candidate_meta: modeldir.ModelMetadata, version: str
) -> None:
    """Raise unless the champion reads the candidate's inputs: only then can both be scored on one test window
    (a public-schema champion and a raw-transaction candidate are different models, not rivals)."""
    if champion_meta.feature_names != candidate_meta.feature_names:
        raise ValueError(
            f"champion version {version} reads {len(champion_meta.feature_names)} features "
            f"({', '.join(champion_meta.feature_names[:3])}, ...), this candidate {len(candidate_meta.feature_names)} "
            f"({', '.join(candidate_meta.feature_names[:3])}, ...): they cannot be compared on one test window; give "
            "this kind of data its own registered_model_name and serving_root"
        )


def _pointer_version(serving_root: str) -> str | None:
    current = champion.read(serving_root).champion
    return current.version if current else None


def _champion_model(
    observed: champion.Observed, mlflow_client: Any, model_name: str, download_to: Path, call: Callable[..., Any]
) -> registry.RegisteredModel | None:
    """The champion's model directory: the one its pointer names (what is served), or before there is a pointer
    (a deployment from before it existed), the version behind the ``champion`` alias."""
    if observed.champion is not None:
        local = modeldir.fetch_model_dir(observed.champion.uri, download_to / "served")
        return registry.RegisteredModel(observed.champion.version, observed.champion.run_id, local)
    return call(
        "read the champion alias",
        registry.version_by_alias,
        mlflow_client,
        model_name,
        CHAMPION,
        download_to / "alias",
    )


def _export(
    candidate_dir: Path, candidate_meta: modeldir.ModelMetadata, model_name: str, serving_root: str, version: str
) -> str:
    """Export the candidate's model directory, stamped with its registry version, as ``{serving_root}/v{version}``."""
    import tempfile

    with tempfile.TemporaryDirectory(prefix="fraud-export-") as tmp:
        export_dir = Path(tmp) / "model"
        export_dir.mkdir()
        for name in candidate_meta.files:
            shutil.copyfile(candidate_dir / name, export_dir / name)
        if (candidate_dir / REFERENCE_FILE).is_file():  # the skew baseline travels with the version
            shutil.copyfile(candidate_dir / REFERENCE_FILE, export_dir / REFERENCE_FILE)
        meta = candidate_meta.model_copy(update={"model_version": version, "model_name": model_name})
        (export_dir / modeldir.METADATA_FILE).write_text(meta.model_dump_json(indent=2) + "\n")
        return modeldir.publish(export_dir, serving_root, version)


def _log_decision(
    mlflow_client: Any, run_id: str, markdown: str, decision: promotion.Decision, robust_fraction: float | None
) -> None:
    """Record the decision on the candidate's run, and its robustness: the reference a later candidate meets."""
    mlflow_client.log_text(run_id, markdown, "promotion/decision.md")
    mlflow_client.log_dict(run_id, decision.as_dict(), "promotion/decision.json")
    mlflow_client.set_tag(run_id, "promoted", str(decision.promoted).lower())
    if robust_fraction is not None:
        mlflow_client.log_metric(run_id, Run.ROBUST_FRACTION, robust_fraction)


def _log_audits(mlflow_client: Any, run_id: str, equalized_odds_difference: float | None) -> None:
    """Record the fairness step's gate number on the candidate's run, where a later judge of this version (the
    controller's shadow promotion) reads it; nothing when fairness was not measurable."""
    if equalized_odds_difference is not None:
        mlflow_client.log_metric(run_id, Run.EQUALIZED_ODDS_DIFFERENCE, equalized_odds_difference)


def _robust_fraction(mlflow_client: Any, run_id: str) -> float | None:
    """The ``robust_fraction`` a promotion recorded on ``run_id`` (None before robustness was recorded)."""
    value = mlflow_client.get_run(run_id).data.metrics.get(Run.ROBUST_FRACTION)
    return None if value is None else float(value)
