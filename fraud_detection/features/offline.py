"""Offline features of a canonical transaction frame: every row's features, point-in-time correct, vectorised.

Per role the frame's rows become one ``History`` (sorted by key then time) and every row is a query against it
(see ``window`` for the rule and the algorithm). Memory: a handful of int64/float64 arrays of the frame's length
per role; 6.36M rows fit in a few GB.
"""

from __future__ import annotations

import numpy as np
import pandas as pd

from fraud_detection.features.definitions import Aggregate, FeatureSet
from fraud_detection.features.request import request_features
from fraud_detection.features.window import History, evaluate_events
from fraud_detection.transactions.frame import AMOUNT, EVENT_TIME, LABEL, LABEL_TIME, SEQ, key_column


class FrameError(ValueError):
    """The frame lacks what the feature set needs (a key column, a sorted ``seq``); the message names it."""


def compute_features(frame: pd.DataFrame, feature_set: FeatureSet) -> pd.DataFrame:
    """The feature set's values for every row of ``frame``, in ``feature_set.names`` order, on ``frame``'s index.

    ``frame`` follows the canonical transaction frame (sorted by ``seq``); rows with equal ``event_time`` never
    see each other, and a label counts only from its ``label_time`` on (strictly after).
    """
    _check(frame, feature_set)
    position = {name: at for at, name in enumerate(feature_set.names)}
    out = np.empty((len(frame), len(position)))  # row-major: one role's features of a row sit together
    codes = {role: _codes(frame[key_column(role)]) for role in feature_set.roles}
    time = frame[EVENT_TIME].to_numpy(dtype=np.float64)
    amount = frame[AMOUNT].to_numpy(dtype=np.float64)
    by_role: dict[str, list[Aggregate]] = {}
    for aggregate in feature_set.aggregates:
        by_role.setdefault(aggregate.entity, []).append(aggregate)
    for role, aggregates in by_role.items():
        wanted = {str(a.column) for a in aggregates if a.aggregate == "distinct"}
        needs_labels = any(a.aggregate == "fraud_risk" for a in aggregates)
        history = History.build(
            entity=codes[role],
            time=time,
            amount=amount,
            label=frame[LABEL].to_numpy(dtype=np.int64) if needs_labels else np.zeros(len(frame), dtype=np.int64),
            label_time=frame[LABEL_TIME].to_numpy(dtype=np.float64) if needs_labels else np.full(len(frame), np.inf),
            counterparty={other: codes[other] for other in wanted},
        )
        # every event is a query, in the history's own order; one row gather puts a role's values in frame order
        computed = evaluate_events(history, aggregates)
        back = np.empty(len(frame), dtype=np.int64)
        back[history.source] = np.arange(len(frame), dtype=np.int64)
        del history
        at = [position[name] for name in computed]
        block = np.stack(list(computed.values()), axis=1).take(back, axis=0)
        if at == list(range(at[0], at[0] + len(at))):
            out[:, at[0] : at[0] + len(at)] = block
        else:
            out[:, at] = block
    for name, values in request_features(frame.__getitem__, feature_set.request).items():
        out[:, position[name]] = values
    return pd.DataFrame(out, columns=list(feature_set.names), index=frame.index, copy=False)


def _codes(keys: pd.Series) -> np.ndarray:
    """Integer codes of an entity key column (missing keys share one entity of their own)."""
    codes, uniques = pd.factorize(keys, sort=False)
    codes = codes.astype(np.int64)
    codes[codes < 0] = len(uniques)
    return codes


def _check(frame: pd.DataFrame, feature_set: FeatureSet) -> None:
    needed = [EVENT_TIME, AMOUNT, *(key_column(role) for role in feature_set.roles)]
    if any(a.aggregate == "fraud_risk" for a in feature_set.aggregates):
        needed += [LABEL, LABEL_TIME]
    missing = [column for column in needed if column not in frame.columns]
    if missing:
        raise FrameError(f"the transaction frame lacks column(s) {missing} that the feature set needs")
    if SEQ in frame.columns and not frame[SEQ].is_monotonic_increasing:
        raise FrameError(f"the transaction frame must be sorted by {SEQ!r}")
