"""A file in PaySim's exact schema through ``fraud run --data-mapping paysim`` (kfp.local): it promotes, the
champion's model directory records the mapping and the feature set serving needs, and the real model server
serves it: PaySim rows in their own columns, replayed over V1, get the probabilities the offline features give."""

from __future__ import annotations

import re
from pathlib import Path

import numpy as np
import pytest
import requests

from fraud_detection import modeldir
from fraud_detection.features.definitions import paysim_features
from fraud_detection.features.offline import compute_features
from fraud_detection.transactions.contract import canonical
from fraud_detection.transactions.mapping import load_mapping
from tests.serving.conftest import ServerProcess
from tests.transactions.paysim import paysim_frame, promote_paysim

SERVED = 40
"""PaySim rows replayed through the server, one request each, on an empty embedded store."""


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

    # Served: rows of another PaySim file (more fraud, so both classes show), in PaySim's own columns (labels
    # included, as a file holds them), one request each; the server reads and applies the embedded store, so its
    # features are the offline ones of the same rows in the same order.
    rows = paysim_frame(2_000, seed=1, fraud_share=0.3).tail(SERVED).reset_index(drop=True)
    frame = canonical(rows, metadata.transactions.mapping)
    expected = model.predict_proba(compute_features(frame, features).to_numpy(dtype=np.float32))
    env = {"FRAUD_FEATURE_STORE_PATH": str(tmp_path / "state.db")}
    server = ServerProcess(str(champion), tmp_path / "server.log", env)
    try:
        server.wait_ready()
        records = rows.to_dict(orient="records")
        for i, row in enumerate(records):
            response = requests.post(
                f"{server.url}/v1/models/fraud-detector:predict",
                json={"instances": [{**row, "tx_id": f"p{i}"}]},
                timeout=10,
            )
            assert response.status_code == 200, response.text
            answer = response.json()["predictions"][0]
            assert abs(answer["fraud_probability"] - float(expected[i])) <= 1e-9, (i, answer, expected[i])
            assert answer["model_version"] == "1"
        unknown = requests.post(
            f"{server.url}/v1/models/fraud-detector:predict",
            json={"instances": [{**records[0], "tx_id": "p-gift", "type": "GIFT"}]},
            timeout=10,
        )
        assert unknown.status_code == 400 and "type" in unknown.json()["error"]
    finally:
        server.stop()
