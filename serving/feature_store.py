"""The predictor's feature lookup for raw-transaction models: :class:`serving.state_store.StateLookup` off the event
loop, its failures a 503.

The store, its settings and the computation are :mod:`serving.state_store`'s (shared with the stream scorer). Here a
store that cannot be reached fails the request with :class:`FeatureStoreUnavailable` (a 503 naming the reason) and
fails readiness (:meth:`FeatureLookup.ready`); store calls run in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

import numpy as np
from kserve.errors import ServerNotReady

from fraud_detection.features.online import Transaction
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


class FeatureLookup(StateLookup):
    """:class:`StateLookup` whose failures are :class:`FeatureStoreUnavailable`, with async seams."""

    async def features(self, transactions: Sequence[Transaction], write: bool = True) -> np.ndarray:
        """:meth:`compute` in a worker thread, so a slow store never holds the event loop.

        Raises:
            FeatureStoreUnavailable: the store cannot be opened, read or written.
        """
        return await asyncio.to_thread(self.compute, transactions, write)

    async def ready(self) -> bool:
        """The readiness probe's store check, in a worker thread."""
        reason = await asyncio.to_thread(self.check)
        if reason:
            log.warning("not ready: %s", reason)
        return reason is None

    def failure(self, operation: str, reason: str) -> Exception:
        """Count the failed call; a 503 naming the reason."""
        super().failure(operation, reason)
        return FeatureStoreUnavailable(reason)
