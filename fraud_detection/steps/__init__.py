"""Pipeline steps as plain functions over local paths.

Each KFP component in ``components/`` is a thin wrapper that calls one of these with its artifact paths,
so the whole pipeline logic can be run and tested without KFP.
"""

from __future__ import annotations

import logging
import shutil
import time
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

from fraud_detection import data, modeldir, tracking, train
from fraud_detection.synth import SyntheticConfig, true_probability

log = logging.getLogger(__name__)

BASELINE_MAX_ROWS = 250_000
"""The logistic baseline trains on every fraud row plus legitimate rows up to this total (rank metrics
such as AUPRC are unaffected by the sampling; it keeps the baseline to seconds at any data size)."""


def load_step(
    data_uri: str,
    sensitive_column: str,
    synthetic: SyntheticConfig,
    fractions: data.SplitFractions,
    outputs: dict[str, Path],
) -> dict[str, Any]:
    """Read or generate, validate, version and split the data; write each window as Parquet.

    Args:
        outputs: a path for each of ``train``, ``validation``, ``test``, ``current``.

    Returns:
        ``data_version``, ``source``, ``is_synthetic`` and per-window ``rows`` and ``frauds``.
    """
    loaded = data.load_dataset(data_uri, sensitive_column, synthetic)
    windows = data.time_split(loaded.frame, fractions)
    for name, window in windows.items():
        data.write_parquet(window, outputs[name])
    summary: dict[str, Any] = {
        "data_version": loaded.version,
        "source": loaded.source,
        "is_synthetic": data_uri == data.SYNTHETIC_URI,
        "label_noise": synthetic.label_noise,
        "rows": {name: len(w) for name, w in windows.items()},
        "frauds": {name: int(w[data.LABEL].sum()) for name, w in windows.items()},
    }
    log.info("windows: %s", ", ".join(f"{k} {v:,} rows" for k, v in summary["rows"].items()))
    return summary


@dataclass
class TrainStepResult:
    """What the train step measured and where it left the candidate."""

    metrics: dict[str, float]
    threshold: float
    mlflow_run_id: str
    roc: tuple[list[float], list[float], list[float]]
    confusion: list[list[int]]
    extra: dict[str, Any] = field(default_factory=dict)


def train_step(
    train_path: Path,
    validation_path: Path,
    test_path: Path,
    params: train.TrainParams,
    model_dir: Path,
    tracking_uri: str,
    experiment: str,
    data_version: str,
    oracle_label_noise: float | None = None,
) -> TrainStepResult:
    """Train the candidate, score it on the test window, log it to MLflow and write its model directory.

    Args:
        oracle_label_noise: set (to the generator's label noise) when the data is synthetic: the test set's
            best achievable AUPRC is then computed from the true probabilities and reported beside ours.

    Returns:
        Metrics prefixed ``validation_`` and ``test_`` plus ``baseline_lr_test_auprc`` and, for synthetic data,
        ``oracle_test_auprc`` and ``auprc_vs_oracle``.
    """
    import mlflow
    from sklearn.metrics import average_precision_score

    started = time.perf_counter()
    x_train, y_train = data.read_xy(train_path)
    x_valid, y_valid = data.read_xy(validation_path)
    x_test, y_test = data.read_xy(test_path)
    result = train.train_booster(x_train, y_train, x_valid, y_valid, params)
    test_scores = train.predict_proba(result.booster, x_test)
    test = train.evaluate(y_test, test_scores, result.threshold)
    valid = train.evaluate(y_valid, result.validation_scores, result.threshold)

    metrics: dict[str, float] = {f"test_{k}": v for k, v in test.items()}
    metrics.update({f"validation_{k}": v for k, v in valid.items() if k in ("auprc", "roc_auc", "f1")})
    metrics["best_iteration"] = float(result.best_iteration)
    metrics["scale_pos_weight"] = result.scale_pos_weight
    metrics["train_seconds"] = result.seconds

    rows = train.keep_frauds_sample(y_train, BASELINE_MAX_ROWS, params.seed)
    baseline = train.logistic_baseline(x_train[rows], y_train[rows], x_test, params.seed)
    metrics["baseline_lr_test_auprc"] = float(average_precision_score(y_test, baseline))
    if oracle_label_noise is not None:
        oracle = true_probability(x_test, oracle_label_noise)
        metrics["oracle_test_auprc"] = float(average_precision_score(y_test, oracle))
        metrics["auprc_vs_oracle"] = metrics["test_auprc"] / metrics["oracle_test_auprc"]
    del x_train, y_train

    tracking.configure(tracking_uri, experiment)
    with mlflow.start_run(run_name="train") as run:
        mlflow.set_tags({"step": "train", "data_version": data_version})
        mlflow.log_params({**params.as_dict(), "data_version": data_version})
        mlflow.log_metrics(tracking.finite_metrics(metrics))
        import mlflow.xgboost

        logged = mlflow.xgboost.log_model(
            result.booster, name="model", pip_requirements=tracking.PIP_REQUIREMENTS, model_format="ubj"
        )
        mlflow.set_tag("model_uri", logged.model_uri)
        metadata = modeldir.ModelMetadata(
            model_version="candidate",
            threshold=result.threshold,
            mlflow_run_id=run.info.run_id,
            data_version=data_version,
            metrics=tracking.finite_metrics(metrics),
            params={k: v for k, v in params.as_dict().items() if isinstance(v, int | float | str)},
        )
        modeldir.save_model_dir(result.booster, metadata, model_dir)
        mlflow.log_artifacts(str(model_dir), artifact_path="serving_model")
        run_id = run.info.run_id

    tn, fp, fn, tp = (int(test[k]) for k in ("tn", "fp", "fn", "tp"))
    log.info(
        "test AUPRC %.4f (logistic baseline %.4f%s); step took %.1fs",
        metrics["test_auprc"],
        metrics["baseline_lr_test_auprc"],
        f", best achievable {metrics['oracle_test_auprc']:.4f}" if "oracle_test_auprc" in metrics else "",
        time.perf_counter() - started,
    )
    return TrainStepResult(
        metrics=metrics,
        threshold=result.threshold,
        mlflow_run_id=run_id,
        roc=train.roc_points(y_test, test_scores),
        confusion=[[tn, fp], [fn, tp]],
    )


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
    robust_auprc: float | None,
    gates_config: Any,
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
        robust_auprc: AUPRC of the worst attack at ``gates_config.robustness_level``; None if not measured.
        gates_config: a :class:`fraud_detection.promotion.GateConfig`.
        serving_root: local folder or ``gs://`` prefix under which promoted versions are exported.
    """
    import tempfile

    from sklearn.metrics import average_precision_score

    from fraud_detection import promotion, registry

    x_test, y_test = data.read_xy(test_path)
    candidate_booster, candidate_meta = modeldir.load_model_dir(candidate_dir)
    candidate_auprc = float(average_precision_score(y_test, train.predict_proba(candidate_booster, x_test)))
    mlflow_client = registry.client(tracking_uri)
    with tempfile.TemporaryDirectory(prefix="fraud-champion-") as tmp:
        champion = registry.version_by_alias(mlflow_client, model_name, registry.CHAMPION, Path(tmp))
        champion_auprc: float | None = None
        identical = False
        if champion is not None:
            champion_booster, _ = modeldir.load_model_dir(champion.model_dir)
            champion_auprc = float(average_precision_score(y_test, train.predict_proba(champion_booster, x_test)))
            identical = registry.same_model(candidate_dir, champion.model_dir)
    clean_auprc = candidate_auprc if robust_auprc is not None else None
    gates = promotion.evaluate_gates(
        candidate_auprc, champion_auprc, equalized_odds_difference, robust_auprc, clean_auprc, gates_config
    )
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
                shutil.copyfile(candidate_dir / modeldir.MODEL_FILE, export_dir / modeldir.MODEL_FILE)
                meta = candidate_meta.model_copy(update={"model_version": version, "model_name": model_name})
                (export_dir / modeldir.METADATA_FILE).write_text(meta.model_dump_json(indent=2) + "\n")
                serving_uri = modeldir.publish(export_dir, serving_root, version)
            registry.set_alias(mlflow_client, model_name, registry.CHAMPION, version)
    markdown = promotion.render_markdown(decision)
    if candidate_meta.mlflow_run_id:
        mlflow_client.log_text(candidate_meta.mlflow_run_id, markdown, "promotion/decision.md")
        mlflow_client.log_dict(candidate_meta.mlflow_run_id, decision.as_dict(), "promotion/decision.json")
        mlflow_client.set_tag(candidate_meta.mlflow_run_id, "promoted", str(decision.promoted).lower())
    log.info("promotion: %s", decision.reason)
    return PromoteStepResult(decision=decision, markdown=markdown, serving_uri=serving_uri)


def _candidate_params(model_dir: Path) -> tuple[train.TrainParams, int | None]:
    """The candidate's hyper-parameters and best round, from its model directory's metadata."""
    meta = modeldir.read_metadata(model_dir)
    known = set(train.TrainParams.__dataclass_fields__)
    params = train.TrainParams(**{k: v for k, v in meta.params.items() if k in known})  # type: ignore[arg-type]
    best = meta.metrics.get("best_iteration")
    return params, int(best) if best is not None else None


def poison_level_step(
    train_path: Path,
    validation_path: Path,
    test_path: Path,
    model_dir: Path,
    level: float,
    kinds: list[str],
    seed: int,
) -> list[dict[str, Any]]:
    """Every attack kind at one poisoning level (the clean baseline at level 0), with the candidate's knobs."""
    from fraud_detection import poison

    champion_params, best = _candidate_params(model_dir)
    # One thread per level task: levels run side by side (pods on a cluster, two at a time under kfp.local),
    # and XGBoost threads competing for the same cores cost far more than they give.
    params = replace(poison.sweep_params(champion_params, best), nthread=1)
    x_train, y_train = data.read_xy(train_path)
    x_valid, y_valid = data.read_xy(validation_path)
    x_test, y_test = data.read_xy(test_path)
    kinds_here = [poison.NONE] if level == 0 else list(kinds)
    results = []
    for kind in kinds_here:
        started = time.perf_counter()
        results.append(poison.run_level(x_train, y_train, x_valid, y_valid, x_test, y_test, kind, level, params, seed))
        log.info("poison %s at %.0f%%: %.1fs", kind, 100 * level, time.perf_counter() - started)
    return results


def robust_auprc(table: list[dict[str, Any]], level: float) -> float | None:
    """The worst attacked AUPRC at ``level`` across attack kinds (None when the sweep did not include it)."""
    at_level = [float(r["auprc"]) for r in table if abs(float(r["level_pct"]) - 100 * level) < 1e-9 and level > 0]
    return min(at_level) if at_level else None


def poison_collect_step(
    results: list[dict[str, Any]],
    out_dir: Path,
    robustness_level: float,
    tracking_uri: str,
    experiment: str,
    data_version: str,
) -> dict[str, Any]:
    """Build the sweep report, log it to MLflow (a parent run, a child per level), find the gate's AUPRC."""
    from fraud_detection import poison

    summary = poison.collect(results, out_dir)
    summary["mlflow_run_id"] = poison.log_to_mlflow(
        summary, results, tracking_uri, experiment, parent_tags={"data_version": data_version}
    )
    summary["robust_auprc"] = robust_auprc(summary["table"], robustness_level)
    return summary


def drift_step(
    reference_path: Path,
    current_path: Path,
    drift_data_uri: str,
    sensitive_column: str,
    model_dir: Path,
    out_dir: Path,
    tracking_uri: str,
    experiment: str,
) -> dict[str, Any]:
    """Evidently drift between the training window and the current window (or ``drift_data_uri``)."""
    from fraud_detection import drift

    reference = data.read_window(reference_path)
    if drift_data_uri:
        current = data.load_dataset(drift_data_uri, sensitive_column).frame
    else:
        current = data.read_window(current_path)
    booster, _ = modeldir.load_model_dir(model_dir)
    summary = drift.run_drift(reference, current, out_dir, booster=booster)
    summary["mlflow_run_id"] = drift.log_to_mlflow(summary, tracking_uri, experiment)
    return summary


def fairness_step(
    test_path: Path,
    model_dir: Path,
    sensitive_column: str,
    out_dir: Path,
    tracking_uri: str,
    experiment: str,
) -> dict[str, Any]:
    """Fairlearn group metrics and SHAP explanations of the candidate on the test window, logged to MLflow."""
    from fraud_detection import fairness

    booster, meta = modeldir.load_model_dir(model_dir)
    test = data.read_window(test_path)
    summary = fairness.run_fairness(test, booster, meta.threshold, sensitive_column, out_dir)
    summary["mlflow_run_id"] = fairness.log_to_mlflow(summary, tracking_uri, experiment)
    return summary
