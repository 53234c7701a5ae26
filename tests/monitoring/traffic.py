"""Served traffic for the loop-after-deploy tests: prediction records of a calibrated model, and their labels."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import numpy as np
import pandas as pd

from fraud_detection.monitoring import shift
from fraud_detection.monitoring.labels import Label
from fraud_detection.monitoring.records import Endpoint, Prediction, PredictionRecord, record

START = datetime(2026, 1, 1, tzinfo=UTC)
FEATURES = ("V1", "V2", "V3", "Amount")


def scored(
    n: int,
    seed: int = 0,
    start: datetime = START,
    version: str = "3",
    endpoint: Endpoint = "default",
    threshold: float = 0.5,
) -> tuple[list[PredictionRecord], np.ndarray]:
    """``n`` records one second apart from ``start`` with calibrated probabilities, and the true outcomes."""
    rng = np.random.default_rng(seed)
    probability = rng.beta(0.3, 3.0, n)
    outcome = (rng.random(n) < probability).astype(int)
    features = rng.normal(size=(n, len(FEATURES)))
    items = [
        record(
            Prediction(
                transaction_id=f"tx-{i}",
                model_version=version,
                features=dict(zip(FEATURES, map(float, features[i]), strict=True)),
                probability=float(probability[i]),
                decision=bool(probability[i] >= threshold),
                trace_id=f"{i:032x}",
            ),
            inference_service="fraud-detector",
            namespace="fraud",
            endpoint=endpoint,
            time=start + timedelta(seconds=i),
        )
        for i in range(n)
    ]
    return items, outcome


def labels_of(outcome: np.ndarray, start: datetime = START, delay: timedelta = timedelta(days=3)) -> list[Label]:
    """One label per fraud and per legitimate transaction that was confirmed, ``delay`` after its scoring."""
    return [
        Label(tx_id=f"tx-{i}", label=int(y), label_time=start + timedelta(seconds=i) + delay)
        for i, y in enumerate(outcome)
        if y == 1 or i % 3 == 0  # every fraud is reported; a third of the legitimate ones are confirmed
    ]


def recent_with_a_shift(now: datetime, moved: str) -> tuple[list[PredictionRecord], shift.Reference]:
    """The last half hour's records, ``moved`` shifted by one (a standard deviation), and the training reference."""
    recent, _ = scored(1500, seed=8, start=now - timedelta(minutes=30), version="3")  # 25 minutes
    recent = [r.model_copy(update={"id": f"recent-{i}"}) for i, r in enumerate(recent)]
    recent = [
        r.model_copy(update={"data": r.data.model_copy(update={"transaction_id": r.id, "features": {
            **r.data.features, moved: r.data.features[moved] + 1.0}})})
        for r in recent
    ]  # fmt: skip
    rng = np.random.default_rng(9)
    training = pd.DataFrame(rng.normal(size=(20000, len(FEATURES))), columns=list(FEATURES))
    training["score"] = rng.beta(0.3, 3.0, 20000)
    return recent, shift.Reference.of(training)
