"""Column names of the canonical transaction frame, the shared contract of the data, the features and serving.

A raw data set, once its mapping (:mod:`fraud_detection.transactions.mapping`) is applied and its rows pass
the contract (:func:`fraud_detection.transactions.contract.canonical`), is a frame with:

* :data:`TX_ID` (str, unique), :data:`EVENT_TIME` (float64 seconds) and :data:`SEQ` (int64, ``0..n-1``: the
  order after a stable sort by event time, so rows at the same time keep their file order), sorted by seq;
* one ``key_<role>`` column (str) per entity role the mapping names, roles from :data:`ROLES`;
* :data:`AMOUNT` (float64, >= 0), :data:`LABEL` (int64 0/1), :data:`LABEL_TIME` (float64 seconds: when the
  label became known, never before the event);
* the mapping's request columns under their own names: numeric as float64, categorical as str.
"""

from __future__ import annotations

TX_ID = "tx_id"
EVENT_TIME = "event_time"
SEQ = "seq"
AMOUNT = "amount"
LABEL = "label"
LABEL_TIME = "label_time"

ROLES: tuple[str, ...] = ("card", "terminal", "destination")
"""The entity roles a mapping can name: the card or customer, the terminal or merchant, the destination account."""


def key_column(role: str) -> str:
    """The canonical column of an entity role's key: ``key_card``, ``key_terminal`` or ``key_destination``.

    Raises:
        ValueError: ``role`` is not one of :data:`ROLES`.
    """
    if role not in ROLES:
        raise ValueError(f"entity role must be one of {', '.join(ROLES)}, got {role!r}")
    return f"key_{role}"


RESERVED: frozenset[str] = frozenset({TX_ID, EVENT_TIME, SEQ, AMOUNT, LABEL, LABEL_TIME, *map(key_column, ROLES)})
"""Canonical names a request column may not take (it keeps its own name in the frame)."""
