"""A file in PaySim's exact schema through ``fraud run --data-mapping paysim`` (kfp.local): it promotes, and the
champion's model directory records the mapping and the feature set serving needs."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest

from fraud_detection import modeldir
from fraud_detection.features.definitions import paysim_features
from fraud_detection.transactions.mapping import load_mapping
from tests.transactions.paysim import promote_paysim


@pytest.mark.slow
@pytest.mark.timeout(1500)
def test_a_paysim_file_runs_end_to_end_and_its_champion_records_its_inputs(tmp_path: Path) -> None:
    out, champion = promote_paysim(tmp_path)
    assert "Promotion: PROMOTED - first champion" in out
    assert re.search(r"(done: | \| )deploy-model \d", out), "the conditional deploy step did not run"
    assert re.search(r"^  card precision@100 [\d.]+ per day", out, flags=re.M)
    assert "not audited: the data has no sensitive attribute column" in out
    features = paysim_features()
    assert re.search(rf"(no drift|DRIFTED): \d+ of {len(features.names)} features", out)
    model, metadata = modeldir.load_model_dir(champion)
    assert metadata.model_version == "1"
    assert metadata.transactions is not None
    assert metadata.transactions.mapping == load_mapping("paysim")
    assert metadata.transactions.features == features
    assert metadata.feature_names == list(features.names)
    assert "isFlaggedFraud" not in metadata.feature_names
    scores = model.predict_proba(np.zeros((3, len(features.names)), dtype=np.float32))
    assert scores.shape == (3,) and np.all((scores >= 0) & (scores <= 1))
