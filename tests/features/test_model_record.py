"""The model directory records a transaction model's mapping and feature set, and holds its feature order to it."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from fraud_detection.features.definitions import paysim_features
from fraud_detection.modeldir import ModelMetadata, TransactionInputs
from fraud_detection.schema import FEATURES
from fraud_detection.transactions.mapping import load_mapping


def test_a_transaction_model_records_its_mapping_and_features_and_reads_them_back() -> None:
    inputs = TransactionInputs(mapping=load_mapping("paysim"), features=paysim_features())
    meta = ModelMetadata(
        model_version="candidate", threshold=0.5, feature_names=list(inputs.features.names), transactions=inputs
    )
    again = ModelMetadata.model_validate_json(meta.model_dump_json())
    assert again.transactions == inputs
    assert again.feature_names == list(paysim_features().names)


def test_feature_names_must_follow_the_recorded_set_or_the_public_schema() -> None:
    inputs = TransactionInputs(mapping=load_mapping("paysim"), features=paysim_features())
    with pytest.raises(ValidationError, match=r"transactions\.features"):
        ModelMetadata(model_version="1", threshold=0.5, feature_names=list(FEATURES), transactions=inputs)
    with pytest.raises(ValidationError, match="public schema"):
        ModelMetadata(model_version="1", threshold=0.5, feature_names=list(inputs.features.names))
