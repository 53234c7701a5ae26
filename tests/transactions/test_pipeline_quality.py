"""Quality on the built-in transaction generator: the bake-off with history features against the same bake-off
on each transaction's own columns (amount, hour), and against the best achievable score, the generator's true
probability given what is knowable when a transaction is scored (``Truth.knowable``, docs/transactions.md)."""

from __future__ import annotations

from pathlib import Path

import pytest
from sklearn.metrics import average_precision_score

from fraud_detection import data, data_transactions
from fraud_detection.boosting import TrainParams
from fraud_detection.config import DataKnobs
from fraud_detection.features.definitions import FeatureSet, HourOfDay, Numeric
from fraud_detection.steps.bakeoff import train_step
from fraud_detection.steps.load import load_step

ROWS = 200_000
"""About 330 test frauds: enough for AUPRC to mean something, few enough for a minute's bake-off."""

REQUEST_ONLY = FeatureSet(request=(Numeric(column="amount"), HourOfDay()))
"""Each transaction's own columns alone: no history."""


def _bakeoff_auprc(folder: Path, feature_set: str) -> float:
    """The test AUPRC of the bake-off's winner (xgboost, mlp, their blend) on the generated data."""
    folder.mkdir()
    windows = {name: folder / f"{name}.parquet" for name in data.SPLITS}
    load_step(DataKnobs(data_uri="synthetic-transactions", synthetic_rows=ROWS, feature_set=feature_set), windows)
    result = train_step(
        windows["train"],
        windows["validation"],
        windows["test"],
        TrainParams(),
        folder / "model",
        f"sqlite:///{folder / 'mlflow.db'}",
        "quality",
        "v",
    )
    return float(result.metrics["test_auprc"])


@pytest.fixture(scope="module")
def measured(tmp_path_factory: pytest.TempPathFactory) -> dict[str, float]:
    """Test AUPRC with history features, with request features only, and of the knowable probabilities."""
    root = tmp_path_factory.mktemp("quality")
    (root / "request.json").write_text(REQUEST_ONLY.to_json())
    knobs = DataKnobs(data_uri="synthetic-transactions", synthetic_rows=ROWS)
    rows, _, best = data_transactions.read_canonical(knobs, data_transactions.inputs_of(knobs))
    assert best is not None
    bounds = data.split_bounds(ROWS, knobs.fractions)
    test = slice(bounds[2], bounds[3])
    measured = {
        "history": _bakeoff_auprc(root / "history", ""),
        "request": _bakeoff_auprc(root / "request", str(root / "request.json")),
        "best": float(average_precision_score(rows["label"].to_numpy()[test], best[test])),
    }
    print(
        f"\ntest AUPRC: history {measured['history']:.4f}, own columns {measured['request']:.4f} "
        f"({measured['history'] / measured['request']:.1f}x), best achievable {measured['best']:.4f} "
        f"({measured['history'] / measured['best']:.1%} of it)"
    )
    return measured


@pytest.mark.slow
def test_history_features_reach_one_and_a_half_times_the_request_only_auprc(measured: dict[str, float]) -> None:
    assert measured["history"] >= 1.5 * measured["request"], measured


@pytest.mark.slow
def test_history_features_reach_nine_tenths_of_the_best_achievable_auprc(measured: dict[str, float]) -> None:
    assert measured["history"] >= 0.9 * measured["best"], measured
