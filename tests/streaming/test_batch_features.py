"""The stream's batch path (:meth:`serving.state_store.StateLookup.apply_then_compute`) gives the offline features."""

from __future__ import annotations

import uuid
from collections.abc import Iterator, Sequence
from pathlib import Path

import numpy as np
import pytest

from fraud_detection.features.online import Transaction
from fraud_detection.features.redis_store import RedisStateStore
from fraud_detection.features.store import EntityStateStore, SQLiteStateStore, entities_of
from fraud_detection.modeldir import TransactionInputs, read_metadata
from serving.state_store import StateLookup, batch_features
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


@pytest.fixture(scope="module")
def sparse(tmp_path_factory: pytest.TempPathFactory) -> TransactionModel:
    """A month of rows, few a day: a batch of 400 spans about a week, so the store trims inside it."""
    return make_transaction_model(tmp_path_factory.mktemp("sparse") / "model", n_rows=1_500, days=30)


@pytest.fixture(scope="module")
def redis_url() -> Iterator[str]:
    """A real redis-server on a free 127.0.0.1 port for the module."""
    with redis_server() as url:
        yield url


def _opened(store: str, model: TransactionModel, tmp_path: Path, request: pytest.FixtureRequest) -> EntityStateStore:
    horizon = _inputs(model).features.horizon
    if store == "redis":
        return RedisStateStore(request.getfixturevalue("redis_url"), horizon=horizon, prefix=uuid.uuid4().hex)
    return SQLiteStateStore(tmp_path / "state.db", horizon=horizon)


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_a_batch_spanning_a_week_gives_the_offline_features_on_both_stores(
    sparse: TransactionModel, tmp_path: Path, request: pytest.FixtureRequest, store: str
) -> None:
    """A batch of 400 spans about a week here, so its later applies trim what its earlier transactions' windows
    reach; ``apply_and_read`` hands the states as they were before the batch plus the batch's events."""
    opened = _opened(store, sparse, tmp_path, request)
    got = _streamed(sparse, StateLookup(_inputs(sparse), lambda: opened, "test", write=True), opened, 400)
    opened.close()
    assert np.array_equal(got, sparse.features.to_numpy(dtype=np.float32)), np.argwhere(got != sparse.features)[:5]


class _ReadBack(StateLookup):
    """The batch applied, then its entities read back from the store: what ``apply_and_read`` does not do."""

    def apply_then_compute(self, transactions: Sequence[Transaction]) -> np.ndarray:
        store = self.store()
        store.apply_many(transactions)
        states = store.read_batch(entities_of(transactions))
        return batch_features(transactions, states, self.inputs.features).astype(np.float32)


@pytest.mark.parametrize("store", ["sqlite", "redis"])
def test_reading_a_week_long_batch_back_after_applying_it_would_miss_trimmed_events(
    sparse: TransactionModel, tmp_path: Path, request: pytest.FixtureRequest, store: str
) -> None:
    """The check above can fail on this data: states read back after the batch lack what its applies trimmed."""
    opened = _opened(store, sparse, tmp_path, request)
    got = _streamed(sparse, _ReadBack(_inputs(sparse), lambda: opened, "test", write=True), opened, 400)
    opened.close()
    assert not np.array_equal(got, sparse.features.to_numpy(dtype=np.float32))


def test_a_batch_of_no_transactions_gives_no_rows(model: TransactionModel, tmp_path: Path) -> None:
    """A batch whose every message was a reject: nothing to apply or read, and no features (not an error)."""
    lookup, store = _lookup(model, tmp_path / "state.db")
    assert lookup.apply_then_compute([], {("tx", 0): 3}).shape[0] == 0
    assert lookup.read_then_compute([]).shape[0] == 0
    assert store.progress("tx") == {0: 3}
    store.close()
