"""Rows of concurrent requests are scored together, and each caller gets its own rows back."""

from __future__ import annotations

import asyncio
from pathlib import Path
from typing import Any

import numpy as np
import pytest

from fraud_detection.modeldir import load_model_dir
from serving.predictor import _Coalescer


class CountingModel:
    """A real loaded model that counts its ``predict_proba`` calls."""

    def __init__(self, model: Any) -> None:
        self.model = model
        self.calls = 0

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        self.calls += 1
        return np.asarray(self.model.predict_proba(x))


@pytest.mark.slow
def test_requests_in_the_same_loop_turn_share_one_call(model_dir: Path) -> None:
    model, _ = load_model_dir(model_dir)
    counting = CountingModel(model)
    rng = np.random.default_rng(0)
    parts = [rng.normal(size=(n, 29)).astype(np.float32) for n in (1, 3, 1, 5, 2)]

    async def run() -> list[np.ndarray]:
        coalescer = _Coalescer(max_rows=1000)
        return list(await asyncio.gather(*(coalescer.score(counting, part) for part in parts)))

    results = asyncio.run(run())
    assert counting.calls == 1
    for part, result in zip(parts, results, strict=True):
        np.testing.assert_allclose(result, model.predict_proba(part), rtol=1e-6)


@pytest.mark.slow
def test_batches_are_capped_at_max_rows(model_dir: Path) -> None:
    model, _ = load_model_dir(model_dir)
    counting = CountingModel(model)
    parts = [np.zeros((4, 29), dtype=np.float32) for _ in range(5)]

    async def run() -> None:
        coalescer = _Coalescer(max_rows=8)
        await asyncio.gather(*(coalescer.score(counting, part) for part in parts))

    asyncio.run(run())
    assert counting.calls == 3  # 4+4, 4+4, 4


def test_a_failing_model_fails_every_waiting_caller() -> None:
    class Broken:
        def predict_proba(self, x: np.ndarray) -> np.ndarray:
            raise RuntimeError("model exploded")

    async def run() -> list[Any]:
        coalescer = _Coalescer(max_rows=10)
        x = np.zeros((1, 29), dtype=np.float32)
        return list(
            await asyncio.gather(coalescer.score(Broken(), x), coalescer.score(Broken(), x), return_exceptions=True)
        )

    outcomes = asyncio.run(run())
    assert all(isinstance(o, RuntimeError) and "exploded" in str(o) for o in outcomes)
