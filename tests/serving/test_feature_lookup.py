"""The predictor's feature lookup: requests of one event-loop turn share one trip to the worker thread, one trip at
a time.

A real embedded store and a real transaction model directory; no server. Requests in flight together are computed
in arrival order (a later payment of the same card sees the earlier one), each gets its own answer or its own
error, and every answer equals a lone :meth:`StateLookup.compute`.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Iterable, Sequence
from pathlib import Path

import numpy as np
import pytest

from fraud_detection.features.online import EntityState, Transaction
from fraud_detection.features.store import Entity, SQLiteStateStore
from fraud_detection.modeldir import load_model_dir
from serving.feature_store import FeatureLookup, FeatureStoreUnavailable, _Pending
from tests.serving.transaction_model import TransactionModel, feature_set, make_transaction_model


@pytest.fixture(scope="module")
def model(tmp_path_factory: pytest.TempPathFactory) -> TransactionModel:
    return make_transaction_model(tmp_path_factory.mktemp("lookup") / "model", n_rows=1_500, days=6)


class CountingLookup(FeatureLookup):
    """Records the thread and the size of each trip to the worker thread."""

    def __init__(self, model: TransactionModel, path: Path, write: bool = True) -> None:
        inputs = load_model_dir(model.directory)[1].transactions
        assert inputs is not None
        super().__init__(inputs, lambda: SQLiteStateStore(path, horizon=feature_set().horizon), str(path), write)
        self.trips: list[tuple[int, str]] = []

    def _compute_each(self, batch: Sequence[_Pending]) -> list[np.ndarray | Exception]:
        self.trips.append((len(batch), threading.current_thread().name))
        return super()._compute_each(batch)


def filled(model: TransactionModel, path: Path) -> None:
    store = SQLiteStateStore(path, horizon=feature_set().horizon)
    model.fill(store, model.test_start)
    store.close()


def assert_answered_as_alone(
    model: TransactionModel, path: Path, rows: list[Transaction], answers: list[np.ndarray]
) -> None:
    """Each answer equals a lone :meth:`compute` on a fresh copy of the state, one after the other, each applied:
    arrival order."""
    filled(model, path)
    alone = CountingLookup(model, path)
    expected = [alone.compute([row]) for row in rows]
    for got, want in zip(answers, expected, strict=True):
        np.testing.assert_array_equal(got, want)
    alone.close()


def test_requests_in_flight_together_make_one_trip_and_get_the_lone_answers(
    model: TransactionModel, tmp_path: Path
) -> None:
    rows = [model.transaction(i) for i in range(model.test_start, model.test_start + 12)]
    filled(model, tmp_path / "together.db")
    together = CountingLookup(model, tmp_path / "together.db")

    async def concurrently() -> list[np.ndarray]:
        return await asyncio.gather(*(together.features([row]) for row in rows))

    answers = asyncio.run(concurrently())
    assert [size for size, _ in together.trips] == [len(rows)]
    assert together.trips[0][1] != threading.main_thread().name
    assert_answered_as_alone(model, tmp_path / "alone.db", rows, answers)
    together.close()


class SlowLookup(CountingLookup):
    """Holds each trip in the worker thread until the test lets it go, and notes whether two trips ever overlapped."""

    def __init__(self, model: TransactionModel, path: Path, write: bool = True) -> None:
        super().__init__(model, path, write)
        self.release = threading.Event()
        self._count = threading.Lock()
        self.started = 0
        self.inside = 0
        self.most_inside = 0

    def _compute_each(self, batch: Sequence[_Pending]) -> list[np.ndarray | Exception]:
        with self._count:
            self.started += 1
            self.inside += 1
            self.most_inside = max(self.most_inside, self.inside)
        try:
            self.release.wait(10)
            return super()._compute_each(batch)
        finally:
            with self._count:
                self.inside -= 1


def test_requests_arriving_during_a_trip_wait_for_it_and_go_together_in_the_next(
    model: TransactionModel, tmp_path: Path
) -> None:
    rows = [model.transaction(i) for i in range(model.test_start, model.test_start + 9)]
    filled(model, tmp_path / "trips.db")
    lookup = SlowLookup(model, tmp_path / "trips.db")

    async def in_two_waves() -> list[np.ndarray]:
        first = asyncio.ensure_future(lookup.features(rows[0:1]))
        for _ in range(50):  # until the first trip is in the worker thread
            if lookup.started:
                break
            await asyncio.sleep(0.01)
        later = [asyncio.ensure_future(lookup.features([row])) for row in rows[1:]]
        await asyncio.sleep(0.05)  # several event-loop turns while the first trip is held
        assert lookup.started == 1, "a second trip started while the first was running"
        lookup.release.set()
        return await asyncio.gather(first, *later)

    answers = asyncio.run(in_two_waves())
    assert [size for size, _ in lookup.trips] == [1, len(rows) - 1]
    assert lookup.most_inside == 1
    assert len({thread for _, thread in lookup.trips}) == 1, "every trip in the lookup's one thread"
    assert_answered_as_alone(model, tmp_path / "alone.db", rows, answers)
    lookup.close()


def test_a_read_only_lookup_starts_another_trip_while_one_is_running(model: TransactionModel, tmp_path: Path) -> None:
    rows = [model.transaction(i) for i in range(model.test_start, model.test_start + 2)]
    filled(model, tmp_path / "read.db")
    lookup = SlowLookup(model, tmp_path / "read.db", write=False)

    async def two_trips() -> list[np.ndarray]:
        first = asyncio.ensure_future(lookup.features(rows[:1]))
        second = None
        for _ in range(100):  # the second request goes while the first trip is held
            await asyncio.sleep(0.01)
            if lookup.started and second is None:
                second = asyncio.ensure_future(lookup.features(rows[1:]))
            if lookup.started == 2:
                break
        assert lookup.started == 2, "a read-only lookup waited for a running trip"
        lookup.release.set()
        assert second is not None
        return list(await asyncio.gather(first, second))

    answers = asyncio.run(two_trips())
    assert lookup.most_inside == 2
    assert [answer.shape for answer in answers] == [(1, len(feature_set().names))] * 2
    lookup.close()


def test_one_request_failing_leaves_the_others_answered(model: TransactionModel, tmp_path: Path) -> None:
    filled(model, tmp_path / "state.db")
    lookup = CountingLookup(model, tmp_path / "state.db", write=False)
    good = model.transaction(model.test_start)
    no_terminal = Transaction(tx_id="x", event_time=good.event_time, amount=1.0, keys={"card": "c1"}, request={})

    async def concurrently() -> list[np.ndarray | BaseException]:
        return list(
            await asyncio.gather(lookup.features([good]), lookup.features([no_terminal]), return_exceptions=True)
        )

    first, second = asyncio.run(concurrently())
    assert isinstance(first, np.ndarray) and first.shape == (1, len(feature_set().names))
    assert isinstance(second, KeyError)
    lookup.close()


def test_a_store_that_cannot_be_opened_fails_every_request_of_the_trip_with_a_503(
    model: TransactionModel, tmp_path: Path
) -> None:
    inputs = load_model_dir(model.directory)[1].transactions
    assert inputs is not None
    missing = tmp_path / "absent" / "state.db"
    lookup = FeatureLookup(
        inputs, lambda: SQLiteStateStore(missing, horizon=1.0, readonly=True), str(missing), write=False
    )
    row = model.transaction(model.test_start)

    async def concurrently() -> list[np.ndarray | BaseException]:
        return list(await asyncio.gather(lookup.features([row]), lookup.features([row]), return_exceptions=True))

    answers = asyncio.run(concurrently())
    assert all(isinstance(answer, FeatureStoreUnavailable) for answer in answers), answers


class CountingReads(SQLiteStateStore):
    """A read-only store that counts its ``read_many`` calls."""

    reads = 0

    def read_many(self, entities: Iterable[Entity]) -> dict[Entity, EntityState]:
        CountingReads.reads += 1
        return super().read_many(entities)


def test_a_read_only_trip_reads_every_entity_once_and_answers_as_alone(model: TransactionModel, tmp_path: Path) -> None:
    """A lookup that applies nothing reads the whole trip's entities in one ``read_many``; the answers are the lone
    ones, and a later trip sees what the stream applied meanwhile."""
    filled(model, tmp_path / "state.db")
    inputs = load_model_dir(model.directory)[1].transactions
    assert inputs is not None
    horizon = feature_set().horizon
    lookup = FeatureLookup(inputs, lambda: CountingReads(tmp_path / "state.db", horizon, readonly=True), "", False)
    alone = CountingLookup(model, tmp_path / "state.db", write=False)
    rows = [model.transaction(i) for i in range(model.test_start, model.test_start + 12)]

    async def concurrently() -> list[np.ndarray]:
        return await asyncio.gather(*(lookup.features([row]) for row in rows))

    CountingReads.reads = 0
    answers = asyncio.run(concurrently())
    assert CountingReads.reads == 1
    for got, row in zip(answers, rows, strict=True):
        np.testing.assert_array_equal(got, alone.compute([row]))
    stream = SQLiteStateStore(tmp_path / "state.db", horizon=horizon)
    for row in rows:  # the stream applies them: each later one sees the earlier ones
        stream.apply(row)
    after = asyncio.run(concurrently())
    assert any(not np.array_equal(a, b) for a, b in zip(answers, after, strict=True))
    for got, row in zip(after, rows, strict=True):
        np.testing.assert_array_equal(got, alone.compute([row]))
    stream.close()
    lookup.close()
    alone.close()
