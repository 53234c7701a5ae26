"""Raw-transaction data sets in the pipeline: read (or generate) and check them with their mapping, compute the
feature set point-in-time correct, and hand the load step a frame it splits by time like the public one.

The frame the load step writes for raw transactions: ``Time`` (the event time in seconds), the feature set's
columns in ``FeatureSet.names`` order (the model's inputs), ``Class``, the card key (``key_card``, when the
mapping names a card: card precision@k ranks cards by it) and the sensitive column when the mapping carries one.
Each window file records the mapping and the feature set in its Parquet metadata (:func:`window_inputs`), so the
bake-off writes them into the model directory and every step reads the right columns (``data.window_features``).
"""

from __future__ import annotations

import json
import tempfile
from pathlib import Path

import numpy as np
import pandas as pd

from fraud_detection import data, storage
from fraud_detection.config import FEATURE_SET_NAMES, SYNTHETIC_TRANSACTIONS_URI, DataKnobs
from fraud_detection.features.definitions import FeatureSet, card_terminal_features, paysim_features
from fraud_detection.features.offline import FrameError, compute_features
from fraud_detection.features.request import MissingColumnError
from fraud_detection.modeldir import TransactionInputs
from fraud_detection.schema import LABEL, TIME, DataValidationError
from fraud_detection.transactions import frame as tx
from fraud_detection.transactions.contract import canonical
from fraud_detection.transactions.mapping import TransactionMapping, load_mapping

CARD_COLUMN = tx.key_column("card")
"""The card key a transaction window keeps beside its features (never a feature): card precision@k reads it."""

INPUTS_KEY = b"fraud_detection.transactions"
"""The Parquet metadata key under which a transaction window records its :class:`TransactionInputs` as JSON."""

BUILTIN_FEATURE_SETS = dict(zip(FEATURE_SET_NAMES, (card_terminal_features, paysim_features), strict=True))
"""The ``feature_set`` knob's named values (:data:`fraud_detection.config.FEATURE_SET_NAMES`)."""

GENERATOR_MAPPING = "customer_terminal"
"""The mapping of the built-in transaction generator's output."""


def feature_set_of(spec: str, mapping: TransactionMapping) -> FeatureSet:
    """The ``feature_set`` knob's set: a built-in name, a FeatureSet JSON file, or ("") the mapping's default
    (PaySim's set for PaySim's mapping, the card/terminal set otherwise)."""
    if spec in BUILTIN_FEATURE_SETS:
        return BUILTIN_FEATURE_SETS[spec]()
    if spec:
        path = Path(spec)
        if not path.is_file():
            raise DataValidationError(
                f"feature_set {spec!r}: neither {' nor '.join(map(repr, BUILTIN_FEATURE_SETS))} nor a file"
            )
        return FeatureSet.from_json(path.read_text())
    return paysim_features() if mapping == load_mapping("paysim") else card_terminal_features()


def mapping_of(spec: str) -> TransactionMapping:
    """The ``data_mapping`` knob's mapping: a built-in name, a local file or a ``gs://`` object (YAML or JSON)."""
    if not storage.is_gcs(spec):
        return load_mapping(spec)
    with tempfile.TemporaryDirectory(prefix="fraud-mapping-") as tmp:
        return load_mapping(storage.download_file(spec, Path(tmp) / Path(spec).name))


def inputs_of(knobs: DataKnobs) -> TransactionInputs:
    """The mapping and feature set a transaction run reads (the generator's mapping when none is named)."""
    mapping = mapping_of(knobs.data_mapping or GENERATOR_MAPPING)
    return TransactionInputs(mapping=mapping, features=feature_set_of(knobs.feature_set, mapping))


def featured(rows: pd.DataFrame, inputs: TransactionInputs, sensitive_column: str = "") -> pd.DataFrame:
    """The load step's frame of a canonical transaction frame: time, features, label, card key, sensitive column.

    Raises:
        DataValidationError: the feature set needs a column or entity the mapping does not give, or the
            sensitive column is a feature.
    """
    names = inputs.features.names
    if sensitive_column and sensitive_column in names:
        raise DataValidationError(f"sensitive column {sensitive_column!r} is a model feature; fairness needs another")
    try:
        features = compute_features(rows, inputs.features)
    except (FrameError, MissingColumnError) as error:
        raise DataValidationError(f"the feature set does not fit the mapping: {error}") from error
    columns: dict[str, object] = {TIME: rows[tx.EVENT_TIME].to_numpy(dtype=np.float64)}
    columns |= {name: features[name].to_numpy(dtype=np.float64) for name in names}
    columns[LABEL] = rows[tx.LABEL].to_numpy(dtype=np.int64)
    if CARD_COLUMN in rows.columns:
        columns[CARD_COLUMN] = rows[CARD_COLUMN].astype(str).to_numpy()
    if sensitive_column and sensitive_column in rows.columns:
        columns[sensitive_column] = rows[sensitive_column].astype(str).to_numpy()
    return pd.DataFrame(columns, copy=False)


def read_canonical(knobs: DataKnobs, inputs: TransactionInputs) -> tuple[pd.DataFrame, str, np.ndarray | None]:
    """The canonical frame of the run's data (generated or read and checked), where it came from, and for the
    generator each row's best achievable score, its true fraud probability given what is knowable when the row
    is scored (``Truth.knowable``; None for a file)."""
    if knobs.data_uri == SYNTHETIC_TRANSACTIONS_URI:
        from fraud_detection.transactions.generator import TransactionConfig, generate_with_truth

        raw, truth = generate_with_truth(TransactionConfig(n_rows=knobs.synthetic_rows, seed=knobs.synthetic_seed))
        source = f"synthetic-transactions(rows={knobs.synthetic_rows}, seed={knobs.synthetic_seed})"
        rows = canonical(raw, inputs.mapping)
        # canonical orders rows by time, stably; the generator's rows already are, so its truth stays aligned
        return rows, source, truth.knowable
    return canonical(data.read_table(knobs.data_uri), inputs.mapping), knobs.data_uri, None


def read_featured(uri: str, inputs: TransactionInputs, sensitive_column: str = "") -> pd.DataFrame:
    """A transaction file at ``uri`` as the load step's frame (:func:`featured`): for drift on another data set."""
    return featured(canonical(data.read_table(uri), inputs.mapping), inputs, sensitive_column)


def window_metadata(inputs: TransactionInputs) -> dict[bytes, bytes]:
    """The Parquet metadata a transaction window records: its inputs, and its feature columns for
    ``data.window_features``."""
    return {
        INPUTS_KEY: inputs.model_dump_json().encode(),
        data.FEATURES_KEY: json.dumps(list(inputs.features.names)).encode(),
    }


def window_inputs(path: Path | str) -> TransactionInputs | None:
    """The mapping and feature set a window file was made with; None for a public-schema window."""
    raw = data.window_metadata(path).get(INPUTS_KEY)
    return None if raw is None else TransactionInputs.model_validate_json(raw)


__all__ = [
    "BUILTIN_FEATURE_SETS",
    "CARD_COLUMN",
    "feature_set_of",
    "featured",
    "inputs_of",
    "mapping_of",
    "read_canonical",
    "read_featured",
    "window_inputs",
    "window_metadata",
]
