"""Promotion of a shadow challenger on real parts: the controller over HTTP on 127.0.0.1, a real ``mlflow server``
holding the two versions and their runs, and the joiner's store with the paired matured traffic. A challenger
that wins with confidence and passes the gates becomes the champion (pointer, export and alias); one that fails
a gate does not; one whose move loses the race to another writer changes nothing."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest

from fraud_detection import champion, modeldir, registry
from fraud_detection.monitoring import join
from monitor import promote
from monitor.settings import ControllerSettings
from tests.monitoring.loop_parts import Controller, notification
from tests.monitoring.traffic import labels_of, scored
from tests.reliability.conftest import MlflowServer

pytestmark = pytest.mark.slow


@pytest.fixture(scope="module")
def mlflow_server(tmp_path_factory: pytest.TempPathFactory) -> Iterator[MlflowServer]:
    with MlflowServer.running(tmp_path_factory.mktemp("promote-mlflow")) as server:
        yield server


def _version(client: Any, name: str, model_dir: Path, metrics: dict[str, float]) -> tuple[str, str]:
    """A run carrying ``model_dir`` as its serving model and ``metrics``, registered as a version of ``name``."""
    experiment = client.get_experiment_by_name("shadow") or client.get_experiment(client.create_experiment("shadow"))
    run_id = client.create_run(experiment.experiment_id).info.run_id
    client.log_artifacts(run_id, str(model_dir), registry.SERVING_ARTIFACT)
    client.set_tag(run_id, "model_uri", f"runs:/{run_id}/{registry.SERVING_ARTIFACT}")
    for key, value in metrics.items():
        client.log_metric(run_id, key, value)
    client.set_terminated(run_id)
    return registry.register(client, name, run_id, {}), run_id


def _paired_store(path: Path, now: datetime) -> Path:
    """Matured traffic scored by the champion (version 1, calibrated scores) and by the shadow (version 2, which
    nearly knows the outcome), with the labels."""
    start = now - timedelta(days=40)
    answered, outcome = scored(3000, seed=21, start=start, version="1", endpoint="default")
    shadowed, _ = scored(3000, seed=21, start=start, version="2", endpoint="shadow")
    sharper = [
        r.model_copy(update={"data": r.data.model_copy(update={"probability": 0.7 * y + 0.3 * r.data.probability})})
        for r, y in zip(shadowed, outcome, strict=True)
    ]
    store = join.JoinStore(path)
    store.add_records(answered + sharper)
    store.add_labels(labels_of(outcome, start))
    store.close()
    return path


@pytest.fixture
def setup(
    tmp_path: Path, model_dir: Path, mlflow_server: MlflowServer, request: pytest.FixtureRequest
) -> dict[str, Any]:
    """Versions 1 (champion, served from ``v1``) and 2 (the ``challenger`` alias) of a model named after the test;
    ``challenger_metrics`` (a parametrised fixture value, or passing ones) go on version 2's run."""
    name = f"shadow-{request.node.name}".replace("[", "-").replace("]", "")
    client = registry.client(mlflow_server.url)
    challenger_metrics = getattr(request, "param", {"robust_fraction": 0.9, "equalized_odds_difference": 0.05})
    first, first_run = _version(client, name, model_dir, {"robust_fraction": 0.9})
    second, _ = _version(client, name, model_dir, challenger_metrics)
    assert (first, second) == ("1", "2")
    registry.set_alias(client, name, registry.CHAMPION, first)
    registry.set_alias(client, name, registry.CHALLENGER, second)
    root = tmp_path / "serving"
    uri = modeldir.publish(model_dir, str(root), "1")
    champion.compare_and_set(str(root), champion.read(str(root)), champion.Champion("1", uri, first_run))
    db = _paired_store(tmp_path / "join.sqlite", datetime.now(UTC))
    options = ["--tracking-uri", mlflow_server.url, "--model-name", name, "--join-db", str(db), "--cohort-days", "90"]
    return {"name": name, "client": client, "root": root, "db": db, "options": options}


def _alias(client: Any, name: str) -> str:
    return str(client.get_model_version_by_alias(name, registry.CHAMPION).version)


def _post(setup: dict[str, Any], tmp_path: Path, champion_version: str = "1") -> str:
    controller = Controller(tmp_path / "controller", setup["root"], *setup["options"])
    try:
        body = notification(
            "FraudShadowChallengerWins", "g-shadow", champion_version=champion_version, challenger_version="2"
        )
        answer = controller.post(body)
        assert answer.status_code == 200, answer.text
        [action] = answer.json()["actions"]
        assert action["action"] == "promote"
        return str(action["outcome"])
    finally:
        controller.stop()


def test_a_challenger_that_wins_with_confidence_and_passes_the_gates_is_promoted(
    setup: dict[str, Any], tmp_path: Path
) -> None:
    outcome = _post(setup, tmp_path)
    assert outcome == "promoted version 2 over 1"
    now = champion.read(str(setup["root"])).champion
    assert now is not None and now.version == "2"
    assert modeldir.read_metadata(Path(now.uri)).model_version == "2"
    assert (setup["root"] / "champion").resolve() == (setup["root"] / "v2").resolve()
    assert _alias(setup["client"], setup["name"]) == "2"


def test_an_alert_about_a_pair_that_no_longer_holds_moves_nothing(setup: dict[str, Any], tmp_path: Path) -> None:
    before = champion.read(str(setup["root"]))
    outcome = _post(setup, tmp_path, champion_version="0")
    assert outcome == "champion is version 1, not the alert's 0: nothing to promote"
    assert champion.read(str(setup["root"])) == before


@pytest.mark.parametrize("setup", [{"robust_fraction": 0.9, "equalized_odds_difference": 0.6}], indirect=True)
def test_a_challenger_failing_a_gate_is_not_promoted(setup: dict[str, Any], tmp_path: Path) -> None:
    before = champion.read(str(setup["root"]))
    outcome = _post(setup, tmp_path)
    assert outcome.startswith("not promoted: blocked by gate(s): fairness;"), outcome
    assert champion.read(str(setup["root"])) == before
    assert not (setup["root"] / "v2").exists()
    assert _alias(setup["client"], setup["name"]) == "1"


def test_a_promotion_that_loses_the_race_changes_nothing(
    setup: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    root = str(setup["root"])

    def rival(point: str) -> None:
        if point == "promote-compared":  # another writer moves the pointer between the read and the write
            observed = champion.read(root)
            champion.compare_and_set(root, observed, champion.Champion("1", f"{root}/v1", "rival"))

    monkeypatch.setattr(champion, "pause", rival)
    token = tmp_path / "token"
    token.write_text("t\n")
    settings = ControllerSettings(
        token_file=token,
        serving_root=root,
        tracking_uri=setup["options"][1],
        model_name=setup["name"],
        join_db=setup["db"],
        cohort_days=90,
    )
    outcome = promote.promote(settings, "1", "2")
    assert outcome.startswith("lost the race"), outcome
    found = champion.read(root).champion
    assert found == champion.Champion("1", f"{root}/v1", "rival")
    assert _alias(setup["client"], setup["name"]) == "1"
