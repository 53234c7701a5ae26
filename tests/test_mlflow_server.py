"""Training and promotion against a real `mlflow server` process, as the pipeline talks to one on a cluster."""

from __future__ import annotations

import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from fraud_detection import boosting, data, modeldir, registry
from fraud_detection.config import GateKnobs
from fraud_detection.steps.bakeoff import train_step
from fraud_detection.steps.promote import promote_step
from tests.conftest import free_port, stop_process, wait_http


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory) -> Iterator[str]:
    root = tmp_path_factory.mktemp("mlflow-server")
    port = free_port()
    command = [
        *(sys.executable, "-m", "mlflow", "server"),
        *("--backend-store-uri", f"sqlite:///{root}/mlflow.db"),
        *("--artifacts-destination", (root / "artifacts").as_uri()),
        *("--host", "127.0.0.1", "--port", str(port), "--workers", "1"),
    ]
    log = (root / "server.log").open("w")
    server = subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT)
    url = f"http://127.0.0.1:{port}"
    try:
        wait_http(f"{url}/health", timeout=120, process=server, log=root / "server.log")
        yield url
    finally:
        stop_process(server)
        log.close()


@pytest.mark.slow
def test_train_register_and_promote_through_a_tracking_server(mlflow_server, small_frame, tmp_path):
    windows = data.time_split(data.validate(small_frame, "age_group"))
    paths = {}
    for name in ("train", "validation", "test"):
        paths[name] = tmp_path / f"{name}.parquet"
        data.write_parquet(windows[name], paths[name])
    result = train_step(
        paths["train"],
        paths["validation"],
        paths["test"],
        boosting.TrainParams(n_rounds=60),
        tmp_path / "candidate",
        mlflow_server,
        "server-test",
        "sha256:server-test",
    )
    promoted = promote_step(
        tmp_path / "candidate",
        paths["test"],
        0.05,
        1.0,  # attacked AUPRC no clean AUPRC exceeds: the robustness gate passes
        GateKnobs(),
        mlflow_server,
        "fraud-server-test",
        str(tmp_path / "serving"),
    )
    assert promoted.decision.promoted and promoted.decision.candidate_version == "1"
    client = registry.client(mlflow_server)
    champion = client.get_model_version_by_alias("fraud-server-test", "champion")
    assert champion.run_id == result.mlflow_run_id
    # The champion's serving directory comes back through the server's artifact proxy, byte for byte.
    fetched = registry.version_by_alias(client, "fraud-server-test", "champion", tmp_path / "fetched")
    assert fetched is not None and registry.same_model(fetched.model_dir, tmp_path / "candidate")
    decision = client.download_artifacts(result.mlflow_run_id, "promotion/decision.md", str(tmp_path))
    assert "PROMOTED" in Path(decision).read_text()
    _, served = modeldir.load_model_dir(tmp_path / "serving" / "champion")
    assert served.model_version == "1"
