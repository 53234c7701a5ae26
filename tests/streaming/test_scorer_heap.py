"""The scorer keeps its long-lived objects out of the garbage collector's full collections, as the server does:
once the model is loaded, every object alive then is frozen, so a full collection no longer walks the imports and
the model (about 160,000 objects, tens of milliseconds here) while messages wait."""

from __future__ import annotations

import gc
from collections.abc import Iterator
from pathlib import Path

import pytest

from streaming.consumer import StreamScorer
from streaming.settings import StreamSettings


@pytest.fixture
def unfrozen() -> Iterator[None]:
    gc.unfreeze()
    try:
        yield
    finally:
        gc.unfreeze()


def test_loading_the_model_freezes_the_heap(model_dir: Path, unfrozen: None) -> None:
    scorer = StreamScorer(StreamSettings(model_uri=str(model_dir)))
    assert gc.get_freeze_count() == 0
    assert scorer.load()
    assert gc.get_freeze_count() > 100_000
