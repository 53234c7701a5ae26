"""The Dask engine's features equal the local engine's on the generator's data (ties in time, late labels)."""

from __future__ import annotations

import dask
import dask.dataframe as dd
import numpy as np
import pandas as pd
import pytest

from fraud_detection.engines import dask_cluster
from fraud_detection.engines.dask_features import compute_features_dask
from fraud_detection.features.definitions import FeatureSet, HourOfDay, Numeric, card_terminal_features
from fraud_detection.features.offline import compute_features
from fraud_detection.transactions.contract import canonical
from fraud_detection.transactions.generator import TransactionConfig, generate
from fraud_detection.transactions.mapping import load_mapping
from tests.features.conftest import every_kind, raw_frame


def generated(rows: int, seed: int) -> pd.DataFrame:
    frame = canonical(generate(TransactionConfig(n_rows=rows, seed=seed, days=20)), load_mapping("customer_terminal"))
    frame["event_time"] = np.floor(frame["event_time"] / 600.0) * 600.0  # 10-minute marks: many ties in time
    return frame


def on_dask(frame: pd.DataFrame, feature_set: FeatureSet, partitions: int) -> pd.DataFrame:
    """The Dask result lined up with the frame's rows (by ``seq``)."""
    shuffled = frame.sample(frac=1.0, random_state=0)  # partitions in no particular order
    result = compute_features_dask(dd.from_pandas(shuffled, npartitions=partitions), feature_set).compute()
    return result.sort_values("seq").set_index("seq").loc[frame["seq"]]


def assert_same(dask_result: pd.DataFrame, local: pd.DataFrame) -> None:
    assert list(dask_result.columns) == list(local.columns)
    assert len(dask_result) == len(local)
    np.testing.assert_allclose(dask_result.to_numpy(), local.to_numpy(), rtol=1e-9, atol=1e-9)


def test_dask_features_equal_the_local_ones_on_generated_transactions() -> None:
    frame = generated(12_000, seed=4)
    assert frame["event_time"].duplicated().sum() > 1_000
    assert (frame["label_time"] > frame["event_time"]).all()
    feature_set = card_terminal_features()
    with dask.config.set(scheduler="synchronous"):
        result = on_dask(frame, feature_set, partitions=5)
    local = compute_features(frame, feature_set)
    assert_same(result, local)
    assert (local["terminal_fraud_risk_7d_delay_7d"] > 0).any() and (local["card_distinct_terminal_1d"] > 1).any()


def test_dask_features_cover_every_kind_and_request_features() -> None:
    frame = raw_frame(rows=2_000, seed=8)
    with dask.config.set(scheduler="synchronous"):
        result = on_dask(frame, every_kind(), partitions=3)
    assert_same(result, compute_features(frame, every_kind()))


def test_a_wrong_partitioning_would_be_caught() -> None:
    """The comparison can fail: computing each input partition alone (entities split) gives other values."""
    frame = generated(6_000, seed=6)
    feature_set = FeatureSet(aggregates=card_terminal_features().aggregates, request=(Numeric(column="amount"),))
    quarter = len(frame) // 4
    parts = [frame.iloc[i : i + quarter] for i in range(0, len(frame), quarter)]
    split = pd.concat([compute_features(part, feature_set) for part in parts])
    assert not np.allclose(split.to_numpy(), compute_features(frame, feature_set).to_numpy())


@pytest.mark.slow
def test_dask_features_on_a_local_cluster() -> None:
    frame = generated(20_000, seed=2)
    feature_set = FeatureSet(aggregates=card_terminal_features().aggregates, request=(HourOfDay(),))
    with dask_cluster.local_client(workers=2, memory_limit="1GiB"):
        result = on_dask(frame, feature_set, partitions=4)
    assert_same(result, compute_features(frame, feature_set))
