"""The load step on raw transactions: checked with the mapping, features computed, split by time, recorded."""

from __future__ import annotations

import itertools
from pathlib import Path

import pandas as pd
import pytest

from fraud_detection import data, data_transactions
from fraud_detection.config import DataKnobs, PipelineKnobs
from fraud_detection.features.definitions import FeatureSet, HourOfDay, Numeric, card_terminal_features, paysim_features
from fraud_detection.schema import LABEL, TIME, DataValidationError
from fraud_detection.steps.load import load_step
from fraud_detection.transactions.mapping import load_mapping
from tests.transactions.paysim import paysim_frame


def _load(tmp_path: Path, **knobs: object) -> dict[str, Path]:
    outputs = {name: tmp_path / f"{name}.parquet" for name in data.SPLITS}
    result = load_step(DataKnobs(**knobs), outputs)  # type: ignore[arg-type]
    generated = knobs.get("data_uri") == "synthetic-transactions"
    assert (result.oracle_test_auprc is not None) == generated, "the best achievable AUPRC exists for generated data"
    return outputs


def test_generated_transactions_load_as_their_features_split_by_time(tmp_path: Path) -> None:
    windows = _load(tmp_path, data_uri="synthetic-transactions", synthetic_rows=20_000)
    names = card_terminal_features().names
    train = pd.read_parquet(windows["train"])
    assert list(train.columns) == [TIME, *names, LABEL, data_transactions.CARD_COLUMN]
    assert data.window_features(windows["train"]) == names
    inputs = data_transactions.window_inputs(windows["test"])
    assert inputs is not None and inputs.mapping == load_mapping("customer_terminal")
    assert inputs.features == card_terminal_features()
    x, y = data.read_xy(windows["validation"])
    assert x.shape == (3_000, len(names)) and 0 < y.sum() < y.size
    times = [pd.read_parquet(windows[name], columns=[TIME])[TIME] for name in data.SPLITS]
    assert all(a.max() <= b.min() for a, b in itertools.pairwise(times)), "windows follow each other"


def test_a_paysim_file_gets_paysims_features_and_never_its_flag_column(tmp_path: Path) -> None:
    csv = tmp_path / "paysim.csv"
    paysim_frame(6_000, seed=1).to_csv(csv, index=False)
    windows = _load(tmp_path, data_uri=str(csv), data_mapping="paysim")
    assert data.window_features(windows["train"]) == paysim_features().names
    columns = data.window_columns(windows["train"])
    assert "isFlaggedFraud" not in columns and "orig_balance_error" in columns


def test_a_bad_row_stops_the_load_before_any_window_is_written(tmp_path: Path) -> None:
    frame = paysim_frame(3_000, seed=2)
    frame.loc[41, "amount"] = -12.5
    csv = tmp_path / "bad.csv"
    frame.to_csv(csv, index=False)
    with pytest.raises(DataValidationError, match=r"'amount' has 1 negative value.*row 42"):
        _load(tmp_path, data_uri=str(csv), data_mapping="paysim")
    assert not list(tmp_path.glob("*.parquet"))


def test_the_feature_set_knob_takes_a_built_in_name_or_a_file(tmp_path: Path) -> None:
    mapping = load_mapping("customer_terminal")
    assert data_transactions.feature_set_of("paysim", mapping) == paysim_features()
    assert data_transactions.feature_set_of("", mapping) == card_terminal_features()
    own = FeatureSet(request=(Numeric(column="amount"), HourOfDay()))
    (tmp_path / "own.json").write_text(own.to_json())
    assert data_transactions.feature_set_of(str(tmp_path / "own.json"), mapping) == own
    with pytest.raises(DataValidationError, match="neither 'card_terminal' nor 'paysim' nor a file"):
        data_transactions.feature_set_of("cards", mapping)


def test_a_feature_set_that_needs_what_the_mapping_lacks_stops_the_load(tmp_path: Path) -> None:
    csv = tmp_path / "paysim.csv"
    paysim_frame(3_000, seed=3).to_csv(csv, index=False)
    with pytest.raises(DataValidationError, match="the feature set does not fit the mapping"):
        _load(tmp_path, data_uri=str(csv), data_mapping="paysim", feature_set="card_terminal")


def test_raw_transactions_run_on_either_engine() -> None:
    assert PipelineKnobs.of({"data_mapping": "paysim", "engine": "dask"}).data.transactions
    assert PipelineKnobs.of({"data_uri": "synthetic-transactions"}).data.transactions
    assert not PipelineKnobs.of({}).data.transactions
