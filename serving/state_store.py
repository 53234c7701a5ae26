"""The entity-state store opened from settings, and transactions' features computed against it: no KServe.

Shared by the predictor (:mod:`serving.feature_store` adds the 503 and the async seams) and the stream scorer
(:mod:`streaming.transactions`), so both open the same store from the same settings and compute features by the offline
arithmetic, so the values equal the training features. :meth:`StateLookup.compute` (the predictor) takes one transaction
after the other: its entities' state read from the store, the features by
:func:`fraud_detection.features.online.features_for`, and, with ``write``, the transaction applied before the next one
is read, so a later transaction of the same card or terminal sees it; applying nothing, it reads every entity of the
batch in one ``read_many``. :meth:`StateLookup.apply_then_compute` (the stream) applies a whole batch and reads each
of its entities in one store call (``apply_and_read``: one store transaction or script call), and computes the batch's
features in one :func:`fraud_detection.features.window.evaluate` per role. The stores apply a transaction id once, so a
retried request, a redelivered message, or the predictor and the stream applying the same transaction count it once.

The store is the embedded SQLite file by default (``$FRAUD_HOME/features/state.db``, so ``fraud serve`` needs no
server) or Redis (``feature_store_url``; the password from :data:`PASSWORD_ENV`, never from code or a manifest).
A store that cannot be reached is never read as empty state: the call fails, naming the store and the reason, and
``fraud_feature_store_errors_total`` counts it (``fraud_feature_store_up`` drops to 0).
"""

from __future__ import annotations

import functools
import logging
import os
import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, TypeVar
from urllib.parse import quote, urlsplit, urlunsplit

import numpy as np

from fraud_detection.features.definitions import Aggregate, FeatureSet
from fraud_detection.features.gathered import Gathered
from fraud_detection.features.online import EntityState, Transaction, features_for
from fraud_detection.features.request import request_features
from fraud_detection.features.store import EntityStateStore, Progress, SQLiteStateStore, StoreUnavailable
from fraud_detection.features.window import History, evaluate
from fraud_detection.modeldir import TransactionInputs
from fraud_detection.transactions.frame import AMOUNT, EVENT_TIME
from serving.settings import ServingSettings

if TYPE_CHECKING:
    from prometheus_client import Counter, Gauge

log = logging.getLogger(__name__)

T = TypeVar("T")

PASSWORD_ENV = "FRAUD_FEATURE_STORE_PASSWORD"
"""The Redis AUTH password (a Kubernetes Secret's key in the pod's environment); never a setting on a command line."""
STORE_FILE = Path("features") / "state.db"
"""The embedded store's file under ``FRAUD_HOME`` when ``feature_store_path`` is not set."""


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
                grace=settings.feature_store_grace_seconds,
                timeout=settings.feature_store_timeout,
                ca_file=settings.feature_store_ca_file or None,
            )

        return open_redis, where
    path = Path(settings.feature_store_path) if settings.feature_store_path else _home() / STORE_FILE
    writable = settings.feature_store_write

    def open_sqlite() -> EntityStateStore:
        if writable:
            path.parent.mkdir(parents=True, exist_ok=True)
        return SQLiteStateStore(
            path, horizon=horizon, grace=settings.feature_store_grace_seconds, readonly=not writable
        )

    return open_sqlite, f"sqlite at {path}" + ("" if writable else " (read only)")


def _home() -> Path:
    return Path(os.environ.get("FRAUD_HOME") or ".fraud")


class StateLookup:
    """Features of transactions from the store (see the module docstring); thread-safe, opened lazily.

    A failed store call raises what :meth:`failure` makes of it (here :class:`StoreUnavailable`; the predictor's
    subclass makes it a 503).
    """

    def __init__(self, inputs: TransactionInputs, opener: Callable[[], EntityStateStore], where: str, write: bool):
        self.inputs = inputs
        self.where = where
        self.write = write
        self._opener = opener
        self._store: EntityStateStore | None = None
        self._lock = threading.Lock()
        self._roles = tuple(dict.fromkeys(a.entity for a in inputs.features.aggregates))
        self._width = len(inputs.features.names)  # a computed property: ~50 us, too dear per request

    def compute(self, transactions: Sequence[Transaction], write: bool = True) -> np.ndarray:
        """``[N, F]`` float32 features, one transaction after the other; with ``write`` (and the lookup's ``write``)
        each is applied once read, so a later one of the same card in the batch sees it. Without, the batch's
        entities are read together (:meth:`_read_only`)."""
        store = self.store()
        feature_set = self.inputs.features
        if not (write and self.write):
            return self._read_only(store, transactions)
        rows = np.empty((len(transactions), self._width), dtype=np.float64)
        operation = "read"
        try:
            for i, transaction in enumerate(transactions):
                operation = "read"
                states = store.read({role: transaction.keys[role] for role in self._roles})
                rows[i] = list(features_for(transaction, states, feature_set).values())
                operation = "apply"
                store.apply(transaction)
        except StoreUnavailable as error:
            raise self.failure(operation, str(error)) from error
        store_metrics().up.set(1)
        return rows.astype(np.float32)

    def _read_only(self, store: EntityStateStore, transactions: Sequence[Transaction]) -> np.ndarray:
        """:meth:`compute` applying nothing: every entity of ``transactions`` read once, in one ``read_many`` (one
        snapshot, one query or round trip), as nothing changes between the transactions' reads."""
        roles, feature_set = self._roles, self.inputs.features
        keys = [{role: transaction.keys[role] for role in roles} for transaction in transactions]
        try:
            states = store.read_many(entity for each in keys for entity in each.items())
        except StoreUnavailable as error:
            raise self.failure("read", str(error)) from error
        rows = np.empty((len(transactions), self._width), dtype=np.float64)
        for i, (transaction, each) in enumerate(zip(transactions, keys, strict=True)):
            read: dict[str, EntityState] = {role: states[(role, key)] for role, key in each.items()}
            rows[i] = list(features_for(transaction, read, feature_set).values())
        store_metrics().up.set(1)
        return rows.astype(np.float32)

    def apply_then_compute(self, transactions: Sequence[Transaction], progress: Progress | None = None) -> np.ndarray:
        """``[N, F]`` float32 features of a batch the stream applies: the batch is applied and each of its entities
        read in one store call (``apply_and_read``, which records the stream's ``progress`` too), then the features
        of all come from one ``evaluate`` per role.

        The values are :meth:`compute`'s for transactions in time order: a feature uses only events strictly before
        the transaction's time, so the batch's later transactions in the state change nothing, and the labels of
        the batch's own transactions are read with them. The states hold what the store held before the batch (from
        that "now" less the retained span) and what the batch added, so a batch spanning any time finds every event
        its transactions' windows reach: no later apply in it has trimmed one.
        """
        _, states = self.call("apply", lambda store: store.apply_and_read(transactions, progress))
        store_metrics().up.set(1)
        return batch_features(transactions, states, self.inputs.features).astype(np.float32)

    def read_then_compute(self, transactions: Sequence[Transaction]) -> np.ndarray:
        """``[N, F]`` float32 features of a batch a scorer that only reads takes: each of its entities read once
        (``read_batch``), then the features of all from one ``evaluate`` per role, as :meth:`apply_then_compute`."""
        states = self.call("read", lambda store: read_entities(store, transactions, self._roles))
        store_metrics().up.set(1)
        return batch_features(transactions, states, self.inputs.features).astype(np.float32)

    def check(self) -> str | None:
        """None if the store answers a read now, else the reason it does not."""
        operation = "open"
        try:
            store = self._opened()
            operation = "probe"
            store.read({})
        except StoreUnavailable as error:
            return str(self.failure(operation, str(error)))
        store_metrics().up.set(1)
        return None

    def close(self) -> None:
        """Close the store's connection (a later call opens it again)."""
        with self._lock:
            store, self._store = self._store, None
        if store is not None:
            store.close()

    def store(self) -> EntityStateStore:
        """The open store (opened on first use); a failure to open raises :meth:`failure`."""
        try:
            return self._opened()
        except StoreUnavailable as error:
            raise self.failure("open", str(error)) from error

    def _opened(self) -> EntityStateStore:
        with self._lock:
            if self._store is None:
                self._store = self._opener()
                log.info("feature store: %s", self.where)
            return self._store

    def call(self, operation: str, use: Callable[[EntityStateStore], T]) -> T:
        """``use`` of the open store; a failed store call raises :meth:`failure` of ``operation`` (a store that cannot
        be opened, :meth:`store`'s failure of ``open``: counted once)."""
        store = self.store()
        try:
            return use(store)
        except StoreUnavailable as error:
            raise self.failure(operation, str(error)) from error

    def failure(self, operation: str, reason: str) -> Exception:
        """Count a failed store call and make the error to raise."""
        metrics = store_metrics()
        metrics.errors.labels(operation).inc()
        metrics.up.set(0)
        return StoreUnavailable(reason)


def read_entities(store: EntityStateStore, transactions: Sequence[Transaction], roles: Sequence[str]) -> Gathered:
    """The state of every (role, key) of ``transactions``, each read once, all in one ``read_batch``."""
    return store.read_batch((role, transaction.keys[role]) for transaction in transactions for role in roles)


def batch_features(transactions: Sequence[Transaction], states: Gathered, feature_set: FeatureSet) -> np.ndarray:
    """``[N, F]`` float64 features of ``transactions`` from their entities' gathered states, by the offline
    arithmetic: one :func:`~fraud_detection.features.window.evaluate` per role for the whole batch."""
    if not transactions:
        return np.empty((0, 0))
    values: dict[str, np.ndarray] = {}
    by_role: dict[str, list[Aggregate]] = {}
    for aggregate in feature_set.aggregates:
        by_role.setdefault(aggregate.entity, []).append(aggregate)
    query_time = np.array([t.event_time for t in transactions], dtype=np.float64)
    query_amount = np.array([t.amount for t in transactions], dtype=np.float64)
    for role, aggregates in by_role.items():
        part = states.roles[role]
        query_entity = np.array([part.keys[t.keys[role]] for t in transactions], dtype=np.int64)
        columns = part.columns
        counterparties = {str(a.column) for a in aggregates if a.aggregate == "distinct"}
        history = History.build(
            entity=part.entity,
            time=columns["time"],
            amount=columns["amount"],
            label=columns["label"],
            label_time=columns["label_time"],
            counterparty={other: part.codes(other) for other in counterparties},
            by_entity=True,
        )
        values.update(evaluate(history, query_entity, query_time, query_amount, aggregates))
    rows = [{**t.request, AMOUNT: t.amount, EVENT_TIME: t.event_time} for t in transactions]
    values.update(request_features(lambda name: [row[name] for row in rows], feature_set.request))
    return np.column_stack([values[name] for name in feature_set.names])
