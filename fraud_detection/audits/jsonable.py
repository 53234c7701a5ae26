"""Plain-JSON conversion shared by the audit results and the report writers."""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any


def json_safe(value: Any) -> Any:
    """Recursively turn numpy scalars/arrays and NaN into plain JSON values (NaN and inf become None)."""
    import numpy as np

    if isinstance(value, Mapping):
        return {str(k): json_safe(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [json_safe(v) for v in value]
    if isinstance(value, np.ndarray):
        return [json_safe(v) for v in value.tolist()]
    if isinstance(value, np.generic):
        value = value.item()
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value


def nan_if_none(value: Any) -> float:
    """The inverse of :func:`json_safe` for one number: None (a NaN that went through JSON) becomes NaN."""
    return float("nan") if value is None else float(value)


__all__ = ["json_safe", "nan_if_none"]
