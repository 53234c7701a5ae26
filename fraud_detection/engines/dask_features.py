"""History features on the Dask engine: the local arithmetic, per partition of whole entities.

A window of one entity never reads another entity's events, so for each entity role the frame's rows are
shuffled on that role's key (``DataFrame.shuffle(on=key)``): every partition then holds whole entities'
histories. Each partition is put back in ``seq`` order (ties in time keep their file order, as in the whole
frame) and given to :func:`fraud_detection.features.offline.compute_features` with that role's aggregates
only, so the values are the local engine's, computed by the same ``window`` code. The per-role results and the
request features, each keyed by ``seq``, are joined back on ``seq``.

Nothing here holds the data set in one process; a partition holds the rows of its entities (a very busy
entity, or a skewed key, makes one large partition).
"""

from __future__ import annotations

from typing import TYPE_CHECKING

import numpy as np
import pandas as pd

from fraud_detection.features.definitions import Aggregate, FeatureSet
from fraud_detection.features.offline import compute_features
from fraud_detection.transactions.frame import AMOUNT, EVENT_TIME, LABEL, LABEL_TIME, SEQ, key_column

if TYPE_CHECKING:
    import dask.dataframe as dd


def compute_features_dask(frame: dd.DataFrame, feature_set: FeatureSet) -> dd.DataFrame:
    """The feature set's values for every row of a Dask canonical frame: ``seq`` then ``feature_set.names``.

    ``frame`` holds the canonical columns (``seq`` unique, giving the order of rows with equal times); its
    partitions may be in any order. The result is one row per input row, partitioned by ``seq``'s hash; sort
    it by ``seq`` (or join on it) to line it up with the input.
    """
    by_role: dict[str, list[Aggregate]] = {}
    for aggregate in feature_set.aggregates:
        by_role.setdefault(aggregate.entity, []).append(aggregate)
    request_set = FeatureSet(request=feature_set.request) if feature_set.request else None
    result = frame[[SEQ]]
    if request_set is not None:
        result = frame.map_partitions(_partition_features, request_set, meta=_meta(request_set))
    for role, aggregates in by_role.items():
        role_set = FeatureSet(aggregates=tuple(aggregates))
        columns = [SEQ, EVENT_TIME, AMOUNT, *(key_column(r) for r in role_set.roles)]
        if any(a.aggregate == "fraud_risk" for a in aggregates):
            columns += [LABEL, LABEL_TIME]
        role_rows = frame[columns].shuffle(on=key_column(role))
        computed = role_rows.map_partitions(_partition_features, role_set, meta=_meta(role_set))
        result = result.merge(computed, on=SEQ, how="inner")
    return result[[SEQ, *feature_set.names]]


def _meta(feature_set: FeatureSet) -> pd.DataFrame:
    return pd.DataFrame({SEQ: np.zeros(0, dtype=np.int64), **{name: np.zeros(0) for name in feature_set.names}})


def _partition_features(part: pd.DataFrame, feature_set: FeatureSet) -> pd.DataFrame:
    """One partition's features, its rows in ``seq`` order, with ``seq`` beside them."""
    part = part.sort_values(SEQ, kind="stable")
    features = compute_features(part.reset_index(drop=True), feature_set)
    features.insert(0, SEQ, part[SEQ].to_numpy(dtype=np.int64))
    return features
