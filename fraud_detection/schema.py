"""The data contract: canonical column names, the model's feature order, and the validation error."""

from __future__ import annotations

TIME = "Time"
"""Seconds from the start of the data set; used for splitting and drift windows, never as a feature."""

LABEL = "Class"
"""1 for fraud, 0 for legitimate."""

AMOUNT = "Amount"

PCA_FEATURES: tuple[str, ...] = tuple(f"V{i}" for i in range(1, 29))

FEATURES: tuple[str, ...] = (*PCA_FEATURES, AMOUNT)
"""The model's inputs, in the order the booster and the serving payload use: V1..V28, Amount."""


def matrix_names(width: int) -> list[str] | None:
    """Names XGBoost gives the columns of a ``width``-column feature matrix: :data:`FEATURES` for the public
    schema, None (its own ``f0``, ``f1``, ...) for an engineered feature set, whose names the model directory
    records instead. Training and explaining call it alike, so a booster's names always match."""
    return list(FEATURES) if width == len(FEATURES) else None


REQUIRED_COLUMNS: tuple[str, ...] = (TIME, *FEATURES, LABEL)
"""Columns every data set must have (the public credit-card fraud data set's schema)."""

PUBLIC_DATASET_ROWS = 284_807
"""Rows in the public credit-card fraud data set (two days of transactions); the generator's default size."""

DEFAULT_SENSITIVE_COLUMN = "age_group"
"""The synthetic generator's sensitive attribute; audited for fairness, never a model feature."""


class DataValidationError(ValueError):
    """A data set breaks the contract. The message names the column, rows or values at fault."""
