"""The stream's batch path (:meth:`serving.state_store.StateLookup.apply_then_compute`) gives the offline features."""

from __future__ import annotations

import uuid
from collections.abc import Iterator
from pathlib import Path

import numpy as np
import pytest

from fraud_detection.features.redis_store import RedisStateStore
from fraud_detection.features.store import GRACE, EntityStateStore, SQLiteStateStore
from fraud_detection.modeldir import TransactionInputs, read_metadata
from serving import state_store
from serving.state_store import StateLookup, time_runs
from tests.conftest import redis_server
from tests.serving.transaction_model import TransactionModel, make_transaction_model


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> TransactionModel:
    return make_transaction_model(tmp_path_factory.mktemp("transactions") / "model", n_rows=1_500, days=6)


def _inputs(model: TransactionModel) -> TransactionInputs:
    inputs = read_metadata(model.directory).transactions
    assert isinstance(inputs, TransactionInputs)
    return inputs


def _lookup(model: TransactionModel, path: Path) -> tuple[StateLookup, SQLiteStateStore]:
    inputs = _inputs(model)
    store = SQLiteStateStore(path, horizon=inputs.features.horizon)
    return StateLookup(inputs, lambda: store, "test", write=True), store


def _streamed(model: TransactionModel, lookup: StateLookup, store: EntityStateStore, batch: int) -> np.ndarray:
    """Every transaction's features as the stream computes them, in batches of ``batch`` in time order."""
    n = len(model.raw)
    times = model.raw["tx_time"].to_numpy()
    got = np.empty((n, model.features.shape[1]), dtype=np.float32)
    labels = 0
    for start in range(0, n, batch):
        end = min(start + batch, n)
        # Labels go out at their time between the transactions, so all those before the batch's last transaction
        # are on the labels topic when the batch is taken, and the scorer applies them first.
        labels = model.labels_before(store, labels, float(times[end - 1]))
        got[start:end] = lookup.apply_then_compute([model.transaction(i) for i in range(start, end)])
    return got


@pytest.mark.parametrize("batch", [1, 37, 400])
def test_batches_applied_then_read_give_the_offline_features_with_ties_and_labels(
    model: TransactionModel, tmp_path: Path, batch: int
) -> None:
    got = _streamed(model, *_lookup(model, tmp_path / "state.db"), batch)
    expected = model.features.to_numpy(dtype=np.float32)
    assert np.array_equal(got, expected), np.argwhere(got != expected)[:5]


def test_a_batch_applied_again_after_a_kill_gives_the_same_features(model: TransactionModel, tmp_path: Path) -> None:
    lookup, store = _lookup(model, tmp_path / "state.db")
    model.labels_before(store, 0, float(model.raw["tx_time"].iloc[299]))  # early labels change nothing
    rows = [model.transaction(i) for i in range(300)]
    first = lookup.apply_then_compute(rows[:200])
    again = lookup.apply_then_compute(rows[100:300])  # 100..199 were applied already
    assert np.array_equal(first[100:], again[:100])
    assert np.array_equal(again, model.features.to_numpy(dtype=np.float32)[100:300])


def test_a_batch_is_cut_where_its_times_span_more_than_the_limit() -> None:
    assert time_runs([0.0, 5.0, 10.0, 11.0, 30.0, 2.0], 10.0) == [(0, 3), (3, 4), (4, 5), (5, 6)]
    assert time_runs([], 10.0) == []


@pytest.fixture(scope="module")
def sparse(tmp_path_factory: pytest.TempPathFactory) -> TransactionModel:
    """A month of rows, few a day: a batch of 400 spans about a week, so the store trims inside it."""
    return make_transaction_model(tmp_path_factory.mktemp("sparse") / "model", n_rows=1_500, days=30)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free 127.0.0.1 port for the module."""
    with redis_server() as url:
        yield url


@pytest.mark.parametrize("store", ["sqlite", "redis"])
@pytest.mark.parametrize("span, exact", [(state_store.RUN_SPAN, True), (GRACE + 3_600.0, False)])
def test_a_batch_is_cut_where_a_later_apply_would_trim_what_an_earlier_transaction_reads(
    sparse: TransactionModel,
    tmp_path: Path,
    request: pytest.FixtureRequest,
    monkeypatch: pytest.MonkeyPatch,
    store: str,
    span: float,
    exact: bool,
) -> None:
    """Runs of up to ``RUN_SPAN`` give the offline features on both stores; runs an hour longer do not (this data
    reaches the trim, so the check can fail)."""
    monkeypatch.setattr(state_store, "RUN_SPAN", span)
    inputs = _inputs(sparse)
    opened: EntityStateStore = (
        RedisStateStore(request.getfixturevalue("redis_url"), horizon=inputs.features.horizon, prefix=uuid.uuid4().hex)
        if store == "redis"
        else SQLiteStateStore(tmp_path / "state.db", horizon=inputs.features.horizon)
    )
    got = _streamed(sparse, StateLookup(inputs, lambda: opened, "test", write=True), opened, 400)
    opened.close()
    assert np.array_equal(got, sparse.features.to_numpy(dtype=np.float32)) is exact
