"""The predictor's feature lookup for raw-transaction models: the entity-state store, read off the event loop.

:class:`FeatureLookup` turns parsed transactions into the model's feature matrix: for each transaction it reads its
entities' state from the store, computes the features with :func:`fraud_detection.features.online.features_for` (the
offline arithmetic, so the values equal the training features), and, when ``feature_store_write`` is on, applies the
transaction to the store so the next transaction of the same card or terminal sees it (the stores apply a
transaction id once, so a retried request or the stream applying the same transaction counts it once).

The store is the embedded SQLite file by default (``$FRAUD_HOME/features/state.db``, so ``fraud serve`` needs no
server) or Redis (``feature_store_url``; the password from :data:`PASSWORD_ENV`, never from code or a manifest).
A store that cannot be reached is never read as empty state: the request fails with
:class:`FeatureStoreUnavailable` (a 503 naming the reason), readiness fails (:meth:`FeatureLookup.ready`) and
``fraud_feature_store_errors_total`` counts it. Store calls run in a worker thread, never on the event loop.
"""

from __future__ import annotations

import asyncio
import functools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING
from urllib.parse import quote, urlsplit, urlunsplit

import numpy as np
from kserve.errors import ServerNotReady

from fraud_detection.features.online import Transaction, features_for
from fraud_detection.features.store import EntityStateStore, SQLiteStateStore, StoreUnavailable
from fraud_detection.modeldir import TransactionInputs
from serving.settings import ServingSettings

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

PASSWORD_ENV = "FRAUD_FEATURE_STORE_PASSWORD"
"""The Redis AUTH password (a Kubernetes Secret's key in the pod's environment); never a setting on a command line."""
STORE_FILE = Path("features") / "state.db"
"""The embedded store's file under ``FRAUD_HOME`` when ``feature_store_path`` is not set."""


class FeatureStoreUnavailable(ServerNotReady):
    """The entity-state store cannot be reached: a 503 whose message names the store and the reason."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.error_msg = f"feature store unavailable: {reason}"


@dataclass(frozen=True)
class StoreMetrics:
    """The store's Prometheus metrics (``fraud_feature_store_errors_total``, ``fraud_feature_store_up``)."""

    errors: Counter
    up: Gauge


@functools.cache
def store_metrics() -> StoreMetrics:
    """The process's store metrics, registered on first use."""
    from prometheus_client import Counter, Gauge

    return StoreMetrics(
        errors=Counter(
            "fraud_feature_store_errors",
            "Feature-store calls that failed (the request got a 503 or the probe failed), by operation",
            ["operation"],
        ),
        up=Gauge(
            "fraud_feature_store_up",
            "1 while the feature store answers, 0 after a failed call",
            multiprocess_mode="min",
        ),
    )


def redis_url(url: str, password: str | None) -> str:
    """``url`` with ``password`` as its AUTH password (URL-quoted), unless the URL already carries one."""
    if not password:
        return url
    parts = urlsplit(url)
    if parts.password is not None:
        return url
    user = quote(parts.username or "", safe="")
    host = parts.netloc.rsplit("@", 1)[-1]
    return urlunsplit(parts._replace(netloc=f"{user}:{quote(password, safe='')}@{host}"))


def redis_password(settings: ServingSettings) -> str | None:
    """The AUTH string: the ``feature_store_password_file``'s content (trailing newline cut), else the environment's."""
    if settings.feature_store_password_file:
        try:
            return Path(settings.feature_store_password_file).read_text().rstrip("\n")
        except OSError as error:
            raise ValueError(f"feature_store_password_file: cannot read it: {error.strerror}") from error
    return os.environ.get(PASSWORD_ENV)


def store_opener(settings: ServingSettings, inputs: TransactionInputs) -> tuple[Callable[[], EntityStateStore], str]:
    """How to open the store ``settings`` choose, and a description of it for logs (no password in it)."""
    horizon = inputs.features.horizon
    url = settings.feature_store_url
    if url:
        if not url.startswith(("redis://", "rediss://", "unix://")):
            raise ValueError(f"feature_store_url must be redis://, rediss:// or unix://, got {url.split(':')[0]!r}")
        parts = urlsplit(url)
        where = f"redis at {parts.hostname}:{parts.port or 6379}"

        def open_redis() -> EntityStateStore:
            from fraud_detection.features.redis_store import RedisStateStore

            full = redis_url(url, redis_password(settings))
            return RedisStateStore(
                full,
                horizon=horizon,
                timeout=settings.feature_store_timeout,
                ca_file=settings.feature_store_ca_file or None,
            )

        return open_redis, where
    path = Path(settings.feature_store_path) if settings.feature_store_path else _home() / STORE_FILE
    writable = settings.feature_store_write

    def open_sqlite() -> EntityStateStore:
        if writable:
            path.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteStateStore(path, horizon=horizon, readonly=not writable)

    return open_sqlite, f"sqlite at {path}" + ("" if writable else " (read only)")


def _home() -> Path:
    return Path(os.environ.get("FRAUD_HOME") or ".fraud")


class FeatureLookup:
    """Features of transactions from the store (see the module docstring); thread-safe, opened lazily."""

    def __init__(self, inputs: TransactionInputs, opener: Callable[[], EntityStateStore], where: str, write: bool):
        self.inputs = inputs
        self.where = where
        self.write = write
        self._opener = opener
        self._store: EntityStateStore | None = None
        self._lock = threading.Lock()
        self._roles = tuple(dict.fromkeys(a.entity for a in inputs.features.aggregates))

    def compute(self, transactions: Sequence[Transaction], write: bool = True) -> np.ndarray:
        """``[N, F]`` float32 features, one transaction after the other; with ``write`` (and ``feature_store_write``)
        each is applied once read, so a later one of the same card in the batch sees it.

        Raises:
            FeatureStoreUnavailable: the store cannot be opened, read or written.
        """
        store = self._open()
        feature_set = self.inputs.features
        rows = np.empty((len(transactions), len(feature_set.names)), dtype=np.float64)
        operation, write = "read", write and self.write
        try:
            for i, transaction in enumerate(transactions):
                operation = "read"
                states = store.read({role: transaction.keys[role] for role in self._roles})
                rows[i] = list(features_for(transaction, states, feature_set).values())
                if write:
                    operation = "apply"
                    store.apply(transaction)
        except StoreUnavailable as error:
            raise self._failed(operation, str(error)) from error
        store_metrics().up.set(1)
        return rows.astype(np.float32)

    async def features(self, transactions: Sequence[Transaction], write: bool = True) -> np.ndarray:
        """:meth:`compute` in a worker thread, so a slow store never holds the event loop."""
        return await asyncio.to_thread(self.compute, transactions, write)

    def check(self) -> str | None:
        """None if the store answers a read now, else the reason it does not."""
        try:
            self._open().read({})
        except FeatureStoreUnavailable as error:
            return str(error)
        except StoreUnavailable as error:
            return str(self._failed("probe", str(error)))
        store_metrics().up.set(1)
        return None

    async def ready(self) -> bool:
        """The readiness probe's store check, in a worker thread."""
        reason = await asyncio.to_thread(self.check)
        if reason:
            log.warning("not ready: %s", reason)
        return reason is None

    def close(self) -> None:
        """Close the store's connection (a later call opens it again)."""
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()

    def _open(self) -> EntityStateStore:
        with self._lock:
            if self._store is None:
                try:
                    self._store = self._opener()
                except StoreUnavailable as error:
                    raise self._failed("open", str(error)) from error
                log.info("feature store: %s", self.where)
            return self._store

    def _failed(self, operation: str, reason: str) -> FeatureStoreUnavailable:
        metrics = store_metrics()
        metrics.errors.labels(operation).inc()
        metrics.up.set(0)
        return FeatureStoreUnavailable(reason)
