"""The predictor's feature lookup for raw-transaction models: :class:`serving.state_store.StateLookup` off the event
loop, its failures a 503.

The store, its settings and the computation are :mod:`serving.state_store`'s (shared with the stream scorer). Here a
store that cannot be reached fails the request with :class:`FeatureStoreUnavailable` (a 503 naming the reason) and
fails readiness (:meth:`FeatureLookup.ready`); store calls run in a worker thread, never on the event loop.

The hop to that thread costs more CPU than one transaction's lookup (a future, a queue, two thread wake-ups), so
lookups go in trips: the requests that reach :meth:`FeatureLookup.features` in one event-loop turn go together,
and are computed one after the other, in arrival order, as the model's scores are coalesced
(:class:`serving.predictor._Coalescer`). Nothing waits for company: a lone request on an idle lookup goes at once.

* A lookup that applies (``feature_store_write``) runs **one trip at a time**, in a thread of its own; the requests
  that arrive while its trip runs go together in the next. Its applies are serial anyway (one writer transaction or
  script at a time), and trips that overlapped queued on the store's lock and the interpreter lock, at about twice
  the CPU per request (docs/transactions.md).
* A read-only lookup (the production predictor's) starts a trip every event-loop turn that has requests, in the
  loop's default pool of threads: each trip reads all its requests' entities in one ``read_many``, and trips that
  overlap overlap their round trips to Redis. One trip at a time measured no better there, and slower on Redis.
"""

from __future__ import annotations

import asyncio
import contextvars
import itertools
import logging
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor

import numpy as np
from kserve.errors import ServerNotReady

from fraud_detection.features.online import Transaction
from fraud_detection.features.store import EntityStateStore
from fraud_detection.modeldir import TransactionInputs
from serving.state_store import (
    PASSWORD_ENV,
    STORE_FILE,
    StateLookup,
    StoreMetrics,
    redis_url,
    store_metrics,
    store_opener,
)

__all__ = [
    "PASSWORD_ENV",
    "STORE_FILE",
    "FeatureLookup",
    "FeatureStoreUnavailable",
    "StoreMetrics",
    "redis_url",
    "store_metrics",
    "store_opener",
]

log = logging.getLogger(__name__)


class FeatureStoreUnavailable(ServerNotReady):
    """The entity-state store cannot be reached: a 503 whose message names the store and the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.error_msg = f"feature store unavailable: {reason}"


_Pending = tuple[Sequence[Transaction], bool, "asyncio.Future[np.ndarray]"]
_Outcome = np.ndarray | Exception


class FeatureLookup(StateLookup):
    """:class:`StateLookup` whose failures are :class:`FeatureStoreUnavailable`, with async seams."""

    def __init__(
        self, inputs: TransactionInputs, opener: Callable[[], EntityStateStore], where: str, write: bool
    ) -> None:
        super().__init__(inputs, opener, where, write)
        self._pending: list[_Pending] = []
        self._scheduled = False  # a trip is due at the next event-loop turn
        self._running = 0  # trips in the worker threads
        self._one_at_a_time = write
        self._thread: ThreadPoolExecutor | None = None  # the applying lookup's own (read-only: the loop's pool)

    async def features(self, transactions: Sequence[Transaction], write: bool = True) -> np.ndarray:
        """:meth:`compute` in a worker thread, so a slow store never holds the event loop; with the other requests
        of this event-loop turn (see the module docstring).

        Raises:
            FeatureStoreUnavailable: the store cannot be opened, read or written.
        """
        loop = asyncio.get_running_loop()
        future: asyncio.Future[np.ndarray] = loop.create_future()
        self._pending.append((transactions, write, future))
        self._schedule(loop)
        return await future

    def _schedule(self, loop: asyncio.AbstractEventLoop) -> None:
        """Start a trip at the next event-loop turn, unless one is due, or one is running in a lookup that applies
        (its end starts the next)."""
        if self._pending and not self._scheduled and not (self._one_at_a_time and self._running):
            self._scheduled = True
            loop.call_soon(self._flush, loop)

    def _flush(self, loop: asyncio.AbstractEventLoop) -> None:
        self._scheduled = False
        batch, self._pending = self._pending, []
        if self._one_at_a_time and self._thread is None:
            self._thread = ThreadPoolExecutor(max_workers=1, thread_name_prefix="feature-lookup")
        self._running += 1
        context = contextvars.copy_context()
        done = loop.run_in_executor(self._thread, context.run, self._compute_each, batch)
        done.add_done_callback(lambda finished: self._arrived(loop, batch, finished))

    def _arrived(
        self, loop: asyncio.AbstractEventLoop, batch: Sequence[_Pending], finished: asyncio.Future[list[_Outcome]]
    ) -> None:
        """A trip is back: hand out its results, then start the next trip with what arrived meanwhile."""
        self._running -= 1
        _deliver(batch, finished)
        self._schedule(loop)

    def _compute_each(self, batch: Sequence[_Pending]) -> list[_Outcome]:
        """Each request's :meth:`compute` (or the error it raised), in order; run in the worker thread."""
        if len(batch) > 1 and not (self.write and any(write for _, write, _ in batch)):
            together = self._compute_together(batch)
            if together is not None:
                return together
        results: list[_Outcome] = []
        for transactions, write, _ in batch:
            try:
                results.append(self.compute(transactions, write))
            except Exception as error:  # this request's failure; the others still get theirs
                results.append(error)
        return results

    def _compute_together(self, batch: Sequence[_Pending]) -> list[_Outcome] | None:
        """The requests of a batch that applies nothing as one :meth:`compute` (their entities read in one
        ``read_many``), split back per request; a store failure is every request's. None if any other error: then
        each request is computed alone, so only the faulty one gets it."""
        try:
            rows = self.compute([transaction for transactions, _, _ in batch for transaction in transactions], False)
        except FeatureStoreUnavailable as error:
            return [error] * len(batch)
        except Exception:  # one request's fault (a missing key): find which, one request at a time
            return None
        ends = list(itertools.accumulate(len(transactions) for transactions, _, _ in batch))
        return [rows[end - len(transactions) : end] for (transactions, _, _), end in zip(batch, ends, strict=True)]

    async def ready(self) -> bool:
        """The readiness probe's store check, in a worker thread."""
        reason = await asyncio.to_thread(self.check)
        if reason:
            log.warning("not ready: %s", reason)
        return reason is None

    def close(self) -> None:
        """Close the store's connection and let the lookup's own thread end once its trip is done (a later lookup
        opens both again)."""
        thread, self._thread = self._thread, None
        if thread is not None:
            thread.shutdown(wait=False)
        super().close()

    def failure(self, operation: str, reason: str) -> Exception:
        """Count the failed call; a 503 naming the reason."""
        super().failure(operation, reason)
        return FeatureStoreUnavailable(reason)


def _deliver(batch: Sequence[_Pending], finished: asyncio.Future[list[_Outcome]]) -> None:
    """Hand each waiting request its features or its error (a request cancelled meanwhile is skipped)."""
    if finished.cancelled():
        for _, _, future in batch:
            future.cancel()
        return
    error = finished.exception()
    outcomes: Sequence[np.ndarray | BaseException] = finished.result() if error is None else [error] * len(batch)
    for (_, _, future), outcome in zip(batch, outcomes, strict=True):
        if future.done():
            continue
        if isinstance(outcome, BaseException):
            future.set_exception(outcome)
        else:
            future.set_result(outcome)
