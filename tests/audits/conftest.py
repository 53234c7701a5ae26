"""Small time-ordered windows and a quickly trained booster shared by the audit tests."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import pandas as pd
import pytest

from fraud_detection import data, synth
from fraud_detection.audits import poison, poison_results
from fraud_detection.boosting import TrainParams, TrainResult, features_and_label, train_booster

FAST_PARAMS = TrainParams(n_rounds=30, early_stopping_rounds=10, nthread=1)
"""Few rounds, one thread: small models for tests (the audits take the champion's params as given)."""


@dataclass
class Windows:
    """Time-split windows of a synthetic data set and their feature matrices."""

    frames: dict[str, pd.DataFrame]
    x: dict[str, np.ndarray]
    y: dict[str, np.ndarray]


def make_windows(n_rows: int, seed: int, drift: float = 0.0) -> Windows:
    """Generate, time-split (60/15/15/10) and convert to arrays."""
    frame = synth.generate(synth.SyntheticConfig(n_rows=n_rows, seed=seed, drift=drift))
    frames = data.time_split(frame)
    x, y = {}, {}
    for name, window in frames.items():
        x[name], y[name] = features_and_label(window)
    return Windows(frames=frames, x=x, y=y)


def run_poison_level(
    windows: Windows, kind: str, level: float, seed: int, defend: bool = True
) -> poison_results.LevelResult:
    """``poison.run_level`` on the windows' train/validation/test arrays with :data:`FAST_PARAMS`."""
    w = windows
    return poison.run_level(
        w.x["train"],
        w.y["train"],
        w.x["validation"],
        w.y["validation"],
        w.x["test"],
        w.y["test"],
        kind,
        level,
        FAST_PARAMS,
        seed=seed,
        defend=defend,
    )


@pytest.fixture(scope="session")
def windows() -> Windows:
    """80,000 rows: ~100 training frauds and ~25 in each of validation and test."""
    return make_windows(80_000, seed=11)


@pytest.fixture(scope="session")
def trained(windows: Windows) -> TrainResult:
    """A small booster trained on the training window."""
    return train_booster(
        windows.x["train"], windows.y["train"], windows.x["validation"], windows.y["validation"], FAST_PARAMS, 0
    )
