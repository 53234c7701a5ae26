"""A small raw-transaction model directory and its offline truth, for the predictor's tests and its benchmark.

Customers paying at terminals from the built-in generator (times on 5-minute ticks, so many tie; labels known a
day later, so terminal risk moves inside the test window), a feature set of every aggregate kind that fits in a
week, and a small XGBoost model trained on the offline features of the first 70 % of the rows. The test window is
the rest, replayed in time order.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd

from fraud_detection.features.definitions import DAY, HOUR, Aggregate, FeatureSet, HourOfDay, Numeric, OneHot
from fraud_detection.features.online import Transaction
from fraud_detection.features.store import EntityStateStore
from fraud_detection.transactions.generator import CHANNELS

MODEL_VERSION = "3"
MAPPING = "customer_terminal"
TICK = 300.0
"""Event times are rounded down to 5 minutes, so ties in time are common (and must not see each other)."""
SOURCE = ("tx_id", "tx_time", "customer_id", "terminal_id", "amount", "channel")
"""The source columns a client sends (the mapping's, without the label and its time)."""


def feature_set() -> FeatureSet:
    """Card habits, terminal activity and risk from labels known in time, amount, hour and channel."""
    card = [
        Aggregate(entity="card", aggregate="count", window=HOUR),
        Aggregate(entity="card", aggregate="count", window=DAY),
        Aggregate(entity="card", aggregate="mean", column="amount", window=DAY),
        Aggregate(entity="card", aggregate="amount_ratio", column="amount", window=7 * DAY),
        Aggregate(entity="card", aggregate="seconds_since_last", window=DAY),
        Aggregate(entity="card", aggregate="distinct", column="terminal", window=DAY),
    ]
    terminal = [
        Aggregate(entity="terminal", aggregate="count", window=DAY),
        Aggregate(entity="terminal", aggregate="fraud_risk", window=3 * DAY),
        Aggregate(entity="terminal", aggregate="fraud_risk", window=3 * DAY, label_delay=HOUR),
    ]
    request = (Numeric(column="amount"), HourOfDay(), OneHot(column="channel", categories=CHANNELS))
    return FeatureSet(aggregates=(*card, *terminal), request=request)


@dataclass(frozen=True)
class TransactionModel:
    """The model directory, the raw rows in time order, their offline features and the offline probabilities."""

    directory: Path
    raw: pd.DataFrame
    """Source columns (and ``is_fraud``, ``label_time``), sorted by event time like the canonical frame."""
    features: pd.DataFrame
    """Offline features (``compute_features``) of every row, same order."""
    proba: np.ndarray
    """The model's probability of every row from the offline features (float32 input, as served)."""
    test_start: int
    """Index of the first row of the test window."""

    def source_row(self, i: int) -> dict[str, Any]:
        """Row ``i`` as a client sends it: the source columns, as JSON values."""
        row = self.raw.iloc[i]
        return {column: (row[column].item() if hasattr(row[column], "item") else row[column]) for column in SOURCE}

    def transaction(self, i: int) -> Transaction:
        """Row ``i`` as the stream would apply it."""
        row = self.raw.iloc[i]
        return Transaction(
            tx_id=str(row["tx_id"]),
            event_time=float(row["tx_time"]),
            amount=float(row["amount"]),
            keys={"card": str(row["customer_id"]), "terminal": str(row["terminal_id"])},
            request={"channel": str(row["channel"])},
        )

    def label_times(self) -> list[tuple[float, str, int]]:
        """Every label as (label time, tx id, label), in label-time order."""
        return sorted(zip(self.raw["label_time"], self.raw["tx_id"], self.raw["is_fraud"], strict=True))

    def fill(self, store: EntityStateStore, until: int) -> int:
        """Apply rows ``0..until-1`` and every label known before row ``until``, as the stream would have.

        Returns how many labels were applied (the position to continue from in :meth:`label_times`).
        """
        for i in range(until):
            store.apply(self.transaction(i))
        return self.labels_before(store, 0, float(self.raw["tx_time"].iloc[until]))

    def labels_before(self, store: EntityStateStore, start: int, time: float) -> int:
        """Apply the labels from position ``start`` whose time is before ``time``; returns the next position."""
        labels = self.label_times()
        while start < len(labels) and labels[start][0] < time:
            label_time, tx_id, label = labels[start]
            store.apply_label(str(tx_id), int(label), float(label_time))
            start += 1
        return start


def make_transaction_model(directory: Path, n_rows: int = 4_000, seed: int = 5, days: int = 10) -> TransactionModel:
    """Generate, compute features, fit a small booster and save the model directory with its ``transactions``."""
    import xgboost as xgb

    from fraud_detection.features.offline import compute_features
    from fraud_detection.modeldir import ModelMetadata, TransactionInputs, load_model_dir, save_model_dir
    from fraud_detection.transactions.contract import canonical
    from fraud_detection.transactions.generator import TransactionConfig, generate
    from fraud_detection.transactions.mapping import load_mapping

    config = TransactionConfig(
        n_rows=n_rows, seed=seed, days=days, label_delay_days=1.0, label_delay_noise_days=0.25, compromise_rate=0.02
    )
    raw = generate(config)
    raw["tx_time"] = (raw["tx_time"] // TICK) * TICK  # many transactions share a time
    mapping = load_mapping(MAPPING)
    frame = canonical(raw, mapping)
    raw = raw.set_index("tx_id", drop=False).loc[frame["tx_id"]].reset_index(drop=True)
    features_set = feature_set()
    features = compute_features(frame, features_set)
    cut = int(len(frame) * 0.7)
    x = features.to_numpy(dtype=np.float32)
    train = xgb.DMatrix(x[:cut], label=frame["label"].to_numpy()[:cut])
    params = {"max_depth": 3, "eta": 0.3, "objective": "binary:logistic", "nthread": 1, "seed": 0}
    booster = xgb.train(params, train, num_boost_round=20)
    metadata = ModelMetadata(
        model_version=MODEL_VERSION,
        threshold=0.5,
        feature_names=list(features_set.names),
        data_version="test-transactions",
        transactions=TransactionInputs(mapping=mapping, features=features_set),
    )
    path = save_model_dir(booster, metadata, directory)
    model, _ = load_model_dir(path)
    proba = np.asarray(model.predict_proba(x), dtype=np.float32)
    return TransactionModel(path, raw, features.reset_index(drop=True), proba, cut)
