"""Read a raw transaction file (CSV or Parquet, local or ``gs://``) into the canonical frame."""

from __future__ import annotations

import pandas as pd

from fraud_detection.data import read_table
from fraud_detection.transactions.contract import canonical
from fraud_detection.transactions.mapping import TransactionMapping


def read_transactions(uri: str, mapping: TransactionMapping) -> pd.DataFrame:
    """The canonical frame of the file at ``uri`` read with ``mapping``.

    Raises:
        FileNotFoundError: nothing at ``uri``.
        DataValidationError: the file is unreadable, or its columns or rows break the contract.
    """
    return canonical(read_table(uri), mapping)


__all__ = ["read_transactions"]
