"""The evaluate-and-promote step: champion against candidate on one test window, gates, registry."""

from __future__ import annotations

import logging
import shutil
from dataclasses import dataclass
from pathlib import Path
from typing import Any

from fraud_detection import data, modeldir, train
from fraud_detection.config import GateKnobs

log = logging.getLogger(__name__)


@dataclass
class PromoteStepResult:
    """The decision, its Markdown record, and where the champion is served from (if it moved)."""

    decision: Any
    markdown: str
    serving_uri: str


def promote_step(
    candidate_dir: Path,
    test_path: Path,
    equalized_odds_difference: float | None,
    robust_fraction: float | None,
    gates_config: GateKnobs,
    tracking_uri: str,
    model_name: str,
    serving_root: str,
) -> PromoteStepResult:
    """Score champion and candidate on the same test window, apply the gates, register and maybe promote.

    The champion alias, its registry version and its exported files are touched only when every gate passes
    (and then the alias moves last, after the new version is exported). A candidate identical to the champion
    is not registered again.

    Args:
        candidate_dir: the train step's model directory.
        test_path: the test window (Parquet) both models are scored on.
        equalized_odds_difference: from the fairness step; None when the data has no sensitive attribute.
        robust_fraction: the share of its clean AUPRC the poison sweep keeps under the worst attack at
            ``gates_config.robustness_level``; None (not measured) fails the robustness gate. It is recorded on
            the candidate's MLflow run as ``robust_fraction``, the reference a later candidate is judged against.
        gates_config: the gate bounds.
        serving_root: local folder or ``gs://`` prefix under which promoted versions are exported.
    """
    import tempfile

    from sklearn.metrics import average_precision_score

    from fraud_detection import promotion, registry

    x_test, y_test = data.read_xy(test_path)
    candidate_model, candidate_meta = modeldir.load_model_dir(candidate_dir)
    candidate_auprc = float(average_precision_score(y_test, train.predict_proba(candidate_model, x_test)))
    mlflow_client = registry.client(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="fraud-champion-") as tmp:
        champion = registry.version_by_alias(mlflow_client, model_name, registry.CHAMPION, Path(tmp))
        champion_auprc: float | None = None
        champion_robust: float | None = None
        identical = False
        if champion is not None:
            champion_model, _ = modeldir.load_model_dir(champion.model_dir)
            champion_auprc = float(average_precision_score(y_test, train.predict_proba(champion_model, x_test)))
            champion_robust = mlflow_client.get_run(champion.run_id).data.metrics.get("robust_fraction")
            identical = registry.same_model(candidate_dir, champion.model_dir)
    inputs = promotion.GateInputs(
        candidate_auprc=candidate_auprc,
        champion_auprc=champion_auprc,
        baseline_auprc=candidate_meta.metrics.get("baseline_lr_test_auprc"),
        fraud_rate=float(y_test.mean()),
        equalized_odds_difference=equalized_odds_difference,
        robust_fraction=robust_fraction,
        champion_robust_fraction=champion_robust,
        family=candidate_meta.family,
    )
    gates = promotion.evaluate_gates(inputs, gates_config)
    decision = promotion.decide(
        gates, candidate_auprc, champion_auprc, champion.version if champion else None, identical
    )
    serving_uri = ""
    if not identical:
        run_id = candidate_meta.mlflow_run_id or ""
        version = registry.register(
            mlflow_client,
            model_name,
            run_id,
            tags={"data_version": candidate_meta.data_version, "promoted": str(decision.promoted).lower()},
        )
        decision.candidate_version = version
        registry.set_alias(mlflow_client, model_name, registry.CHALLENGER, version)
        if decision.promoted:
            with tempfile.TemporaryDirectory(prefix="fraud-export-") as tmp:
                export_dir = Path(tmp) / "model"
                export_dir.mkdir()
                for name in candidate_meta.files:
                    shutil.copyfile(candidate_dir / name, export_dir / name)
                meta = candidate_meta.model_copy(update={"model_version": version, "model_name": model_name})
                (export_dir / modeldir.METADATA_FILE).write_text(meta.model_dump_json(indent=2) + "\n")
                serving_uri = modeldir.publish(export_dir, serving_root, version)
            registry.set_alias(mlflow_client, model_name, registry.CHAMPION, version)
    markdown = promotion.render_markdown(decision)
    if candidate_meta.mlflow_run_id:
        mlflow_client.log_text(candidate_meta.mlflow_run_id, markdown, "promotion/decision.md")
        mlflow_client.log_dict(candidate_meta.mlflow_run_id, decision.as_dict(), "promotion/decision.json")
        mlflow_client.set_tag(candidate_meta.mlflow_run_id, "promoted", str(decision.promoted).lower())
        if robust_fraction is not None:
            mlflow_client.log_metric(candidate_meta.mlflow_run_id, "robust_fraction", robust_fraction)
    log.info("promotion: %s", decision.reason)
    return PromoteStepResult(decision=decision, markdown=markdown, serving_uri=serving_uri)
