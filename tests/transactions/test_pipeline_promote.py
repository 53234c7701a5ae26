"""Promotion of a raw-transaction model: its exported directory records its inputs, and a champion that reads
other inputs is never silently replaced by (or compared with) it."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraud_detection import boosting, data, modeldir
from fraud_detection.config import DataKnobs, GateKnobs
from fraud_detection.features.definitions import card_terminal_features
from fraud_detection.steps.bakeoff import train_step
from fraud_detection.steps.load import load_step
from fraud_detection.steps.promote import promote_step

ANY_QUALITY = GateKnobs(min_auprc_over_baseline=0.0, min_auprc_over_fraud_rate=0.0)
"""What is tested here is which model may replace which, not how good either is."""


def _candidate(folder: Path, knobs: DataKnobs, tracking_uri: str) -> tuple[Path, Path]:
    """Load ``knobs``' data into ``folder``, train a quick XGBoost candidate; its directory and test window."""
    folder.mkdir()
    windows = {name: folder / f"{name}.parquet" for name in data.SPLITS}
    load_step(knobs, windows)
    params = boosting.TrainParams(n_rounds=30, families=["xgboost"])
    train_step(
        windows["train"], windows["validation"], windows["test"], params, folder / "model", tracking_uri, "t", "v"
    )
    return folder / "model", windows["test"]


@pytest.mark.slow
def test_a_transaction_champion_is_exported_with_its_inputs_and_a_public_candidate_cannot_replace_it(
    tmp_path: Path,
) -> None:
    tracking_uri = f"sqlite:///{tmp_path / 'mlflow.db'}"
    serving_root = str(tmp_path / "serving")
    tx_model, tx_test = _candidate(
        tmp_path / "tx", DataKnobs(data_uri="synthetic-transactions", synthetic_rows=30_000), tracking_uri
    )
    first = promote_step(tx_model, tx_test, None, 1.0, ANY_QUALITY, tracking_uri, "fraud-tx", serving_root)
    assert first.decision.promoted
    _, served = modeldir.load_model_dir(Path(serving_root) / "champion")
    assert served.transactions is not None and served.transactions.features == card_terminal_features()
    assert served.feature_names == list(card_terminal_features().names)

    public_model, public_test = _candidate(
        tmp_path / "public", DataKnobs(data_uri="synthetic", synthetic_rows=20_000), tracking_uri
    )
    with pytest.raises(ValueError, match="cannot be compared on one test window"):
        promote_step(public_model, public_test, None, 1.0, ANY_QUALITY, tracking_uri, "fraud-tx", serving_root)
    assert modeldir.read_metadata(Path(serving_root) / "champion").model_version == "1"
