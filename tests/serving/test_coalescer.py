"""Rows of concurrent requests are scored together, and each caller gets its own rows back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fraud_detection.modeldir import load_model_dir
from serving.predictor import _Coalescer


class CountingBooster:
    """A real booster that counts its ``inplace_predict`` calls."""

    def __init__(self, booster: Any) -> None:
        self.booster = booster
        self.calls = 0

    def inplace_predict(self, x: np.ndarray, validate_features: bool = False) -> np.ndarray:
        self.calls += 1
        return np.asarray(self.booster.inplace_predict(x, validate_features=validate_features))


@pytest.mark.slow
def test_requests_in_the_same_loop_turn_share_one_call(model_dir: Path) -> None:
    booster, _ = load_model_dir(model_dir)
    counting = CountingBooster(booster)
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(n, 29)).astype(np.float32) for n in (1, 3, 1, 5, 2)]

    async def run() -> list[np.ndarray]:
        coalescer = _Coalescer(max_rows=1000)
        return list(await asyncio.gather(*(coalescer.score(counting, part) for part in parts)))

    results = asyncio.run(run())
    assert counting.calls == 1
    for part, result in zip(parts, results, strict=True):
        np.testing.assert_allclose(result, booster.inplace_predict(part, validate_features=False), rtol=1e-6)


@pytest.mark.slow
def test_batches_are_capped_at_max_rows(model_dir: Path) -> None:
    booster, _ = load_model_dir(model_dir)
    counting = CountingBooster(booster)
    parts = [np.zeros((4, 29), dtype=np.float32) for _ in range(5)]

    async def run() -> None:
        coalescer = _Coalescer(max_rows=8)
        await asyncio.gather(*(coalescer.score(counting, part) for part in parts))

    asyncio.run(run())
    assert counting.calls == 3  # 4+4, 4+4, 4


def test_a_failing_booster_fails_every_waiting_caller() -> None:
    class Broken:
        def inplace_predict(self, x: np.ndarray, validate_features: bool = False) -> np.ndarray:
            raise RuntimeError("booster exploded")

    async def run() -> list[Any]:
        coalescer = _Coalescer(max_rows=10)
        x = np.zeros((1, 29), dtype=np.float32)
        return list(
            await asyncio.gather(coalescer.score(Broken(), x), coalescer.score(Broken(), x), return_exceptions=True)
        )

    outcomes = asyncio.run(run())
    assert all(isinstance(o, RuntimeError) and "exploded" in str(o) for o in outcomes)
