"""Promote a shadow challenger that wins with confidence, through the promotion's own gates.

The alert (``FraudShadowChallengerWins``) names a pair of versions; the controller acts only if that pair is
still the champion of record and the registry's ``challenger``, so a late or repeated alert about an older pair
moves nothing. The gates of :mod:`fraud_detection.promotion` then judge the challenger on live evidence:

* ``quality``: both models' live AUPRC on the same matured transactions (the paired cohort of the joiner's
  store, recomputed here, not read from the alert);
* ``quality_floor``: against the live fraud rate of those transactions (there is no live logistic baseline);
* ``fairness`` and ``robustness``: the challenger's MLflow run metrics ``equalized_odds_difference`` and
  ``robust_fraction`` (the promotion step records both on every candidate's run: the fairness step's number and
  the poison sweep's), the latter against the champion's run's ``robust_fraction``;
* and one more, ``shadow_confidence``: the lower bound of the bootstrap interval of the difference is above 0.

When every gate passes, the challenger's model directory is exported as ``{serving_root}/v{version}`` and the
champion pointer moves by :func:`fraud_detection.champion.compare_and_set`; the ``champion`` alias then follows
the pointer (:func:`fraud_detection.registry.follow_pointer`). A failed gate, or a pointer that moved after it
was read, leaves the champion as it was.
"""

from __future__ import annotations

import logging
import tempfile
from datetime import UTC, datetime
from functools import partial
from pathlib import Path
from typing import Any

from fraud_detection import champion, modeldir, promotion, registry
from fraud_detection.metrics import Run
from fraud_detection.monitoring import join, shadow
from monitor.settings import ControllerSettings

log = logging.getLogger("monitor.promote")


def paired_comparison(
    store: join.JoinStore, settings: ControllerSettings, champion_version: str, challenger_version: str, now: datetime
) -> shadow.Comparison | None:
    """The paired comparison of the two versions on the matured cohort at ``now`` (None: no fraud among the
    pairs yet, so nothing to judge)."""
    matured, _ = join.cohorts(store, now, settings.maturity, settings.cohort)
    paired = shadow.pairs(matured)
    mine = paired[
        (paired["champion_version"] == champion_version) & (paired["challenger_version"] == challenger_version)
    ]
    outcome = mine["outcome"].to_numpy(dtype=int)
    if not outcome.sum():
        return None
    return shadow.compare(
        outcome, mine["champion"].to_numpy(dtype=float), mine["challenger"].to_numpy(dtype=float), settings.resamples
    )


def confidence_gate(found: shadow.Comparison) -> promotion.Gate:
    """Passes when the whole bootstrap interval of challenger − champion AUPRC is above 0."""
    note = (
        f"challenger − champion AUPRC {found.difference:+.4f} on {found.pairs} paired transactions "
        f"({found.positives} frauds), {found.confidence:.0%} interval [{found.low:+.4f}, {found.high:+.4f}]"
    )
    return promotion.Gate("shadow_confidence", found.low, 0.0, ">", found.challenger_wins, note)


def _metric(metrics: dict[str, float], name: str) -> float | None:
    value = metrics.get(name)
    return None if value is None else float(value)


def gate_inputs(
    found: shadow.Comparison, challenger_metrics: dict[str, float], champion_metrics: dict[str, float], family: str
) -> promotion.GateInputs:
    """What the promotion gates judge, from the live pairs and the two runs' metrics."""
    return promotion.GateInputs(
        candidate_auprc=found.challenger_auprc,
        champion_auprc=found.champion_auprc,
        baseline_auprc=None,
        fraud_rate=found.positives / found.pairs,
        equalized_odds_difference=_metric(challenger_metrics, Run.EQUALIZED_ODDS_DIFFERENCE),
        robust_fraction=_metric(challenger_metrics, Run.ROBUST_FRACTION),
        champion_robust_fraction=_metric(champion_metrics, Run.ROBUST_FRACTION),
        family=family,
    )


class Registry:
    """The calls to the MLflow registry a promotion makes, each retried through a restarting server."""

    def __init__(self, tracking_uri: str, model_name: str) -> None:
        self.where = tracking_uri
        self.name = model_name
        self.client = registry.client(tracking_uri)

    def call(self, what: str, operation: Any, *args: Any) -> Any:
        """``operation(*args)``, retried (:func:`fraud_detection.registry.retrying`)."""
        return registry.retrying(what, operation, *args, where=self.where)

    def run_metrics(self, run_id: str) -> dict[str, float]:
        """The metrics of ``run_id`` ({} without a run)."""
        return dict(self.call("read run metrics", self.client.get_run, run_id).data.metrics) if run_id else {}

    def export(self, version: str, run_id: str, serving_root: str) -> str:
        """The version's serving model directory, stamped with its version, exported as ``v{version}``."""
        import mlflow.artifacts

        with tempfile.TemporaryDirectory(prefix="fraud-shadow-") as tmp:
            local = Path(
                self.call(
                    "download the challenger",
                    partial(mlflow.artifacts.download_artifacts, tracking_uri=self.where),
                    None,
                    run_id,
                    registry.SERVING_ARTIFACT,
                    tmp,
                )
            )
            meta = modeldir.read_metadata(local).model_copy(update={"model_version": version, "model_name": self.name})
            (local / modeldir.METADATA_FILE).write_text(meta.model_dump_json(indent=2) + "\n")
            return modeldir.export_model_dir(local, f"{serving_root.rstrip('/')}/v{version}")


def promote(
    settings: ControllerSettings, champion_version: str, challenger_version: str, now: datetime | None = None
) -> str:
    """Promote ``challenger_version`` over ``champion_version`` if both still hold their roles and every gate
    passes; returns what happened."""
    if settings.tracking_uri is None or settings.join_db is None:
        return "not configured: promotion needs --tracking-uri and --join-db"
    observed = champion.read(settings.serving_root)
    current = observed.champion
    if current is None or current.version != champion_version:
        held = current.version if current else "none"
        return f"champion is version {held}, not the alert's {champion_version}: nothing to promote"
    mlflow = Registry(settings.tracking_uri, settings.model_name)
    challenger = mlflow.call(
        "read the challenger alias", registry.alias_version, mlflow.client, mlflow.name, registry.CHALLENGER
    )
    if challenger != challenger_version:
        return (
            f"the registry's challenger is version {challenger}, not the alert's {challenger_version}: "
            "nothing to promote"
        )
    store = join.JoinStore(settings.join_db)
    try:
        found = paired_comparison(store, settings, champion_version, challenger_version, now or datetime.now(UTC))
    finally:
        store.close()
    if found is None:
        return f"no matured fraud among the pairs of {champion_version} and {challenger_version}: nothing to judge"
    version = mlflow.call("read the challenger", mlflow.client.get_model_version, mlflow.name, challenger_version)
    run_id = str(version.run_id or "")
    inputs = gate_inputs(found, mlflow.run_metrics(run_id), mlflow.run_metrics(current.run_id), "challenger")
    gates = [*promotion.evaluate_gates(inputs, settings.gates), confidence_gate(found)]
    decision = promotion.decide(
        gates, found.challenger_auprc, found.champion_auprc, champion_version, challenger_version == champion_version
    )
    decision.candidate_version = challenger_version
    if not decision.promoted:
        failed = "; ".join(f"{g.name}: {g.note}" for g in gates if not g.passed)
        return f"not promoted: {decision.reason} ({failed})"
    try:
        uri = mlflow.export(challenger_version, run_id, settings.serving_root)
    except modeldir.ModelDirError as error:
        return f"version {challenger_version} cannot be exported ({error}): the champion stays"
    champion.checkpoint("promote-compared")
    try:
        champion.compare_and_set(settings.serving_root, observed, champion.Champion(challenger_version, uri, run_id))
    except champion.ChampionMoved as moved:
        return f"lost the race: {moved}; the champion was left as the other writer set it"
    registry.follow_pointer(mlflow.client, mlflow.name, partial(_pointer_version, settings.serving_root))
    if run_id:
        mlflow.call(
            "log the decision",
            mlflow.client.log_text,
            run_id,
            promotion.render_markdown(decision),
            "promotion/shadow-decision.md",
        )
    log.warning("shadow challenger %s promoted over %s", challenger_version, champion_version)
    return f"promoted version {challenger_version} over {champion_version}"


def _pointer_version(serving_root: str) -> str | None:
    found = champion.read(serving_root).champion
    return found.version if found else None
