"""Champion/challenger promotion against a real MLflow registry: promote, no-op, block, and leave untouched."""

from __future__ import annotations

import hashlib
from dataclasses import replace
from pathlib import Path

import pytest

from fraud_detection import data, modeldir, promotion, registry, train
from fraud_detection.config import GateKnobs
from fraud_detection.schema import LABEL
from fraud_detection.steps.promote import promote_step
from fraud_detection.steps.train import train_step


def tree_digest(root: Path) -> dict[str, str]:
    """Every file under ``root`` (following the champion symlink) with its SHA-256."""
    return {
        str(p.relative_to(root)): hashlib.sha256(p.read_bytes()).hexdigest()
        for p in sorted(root.rglob("*"))
        if p.is_file()
    } | {"champion ->": str((root / "champion").resolve().name) if (root / "champion").exists() else ""}


@pytest.fixture(scope="module")
def windows(tmp_path_factory, small_frame):
    folder = tmp_path_factory.mktemp("windows")
    split = data.time_split(data.validate(small_frame, "age_group"))
    paths = {}
    for name, window in split.items():
        paths[name] = folder / f"{name}.parquet"
        data.write_parquet(window, paths[name])
    poisoned = split["train"].copy()
    frauds = poisoned.index[poisoned[LABEL] == 1]
    poisoned.loc[frauds[: int(0.8 * len(frauds))], LABEL] = 0  # an attacker hid 80 % of frauds
    paths["poisoned_train"] = folder / "poisoned_train.parquet"
    data.write_parquet(poisoned, paths["poisoned_train"])
    return paths


@pytest.fixture(scope="module")
def registry_uri(tmp_path_factory) -> str:
    """One MLflow database for the module; each test isolates itself with its own registered model name."""
    return f"sqlite:///{tmp_path_factory.mktemp('mlflow')}/mlflow.db"


@pytest.fixture()
def env(request, tmp_path, registry_uri):
    return {
        "tracking_uri": registry_uri,
        "serving_root": str(tmp_path / "serving"),
        "model": f"fraud-{request.node.name.replace('_', '-')[:40]}",
    }


@pytest.fixture(scope="module")
def candidates(windows, registry_uri, tmp_path_factory) -> dict[str, Path]:
    """Candidates trained once: the default model, the same again, one on poisoned labels, one other seed."""
    folder = tmp_path_factory.mktemp("candidates")
    specs = {"c1": ("train", 42), "c2": ("train", 42), "bad": ("poisoned_train", 42), "other": ("train", 7)}
    out = {}
    for name, (train_key, seed) in specs.items():
        out[name] = folder / name
        train_step(
            windows[train_key],
            windows["validation"],
            windows["test"],
            train.TrainParams(n_rounds=80, seed=seed),
            out[name],
            registry_uri,
            "promotion-test",
            "sha256:test",
        )
    return out


ROBUST = 1.0
"""An attacked AUPRC no clean AUPRC exceeds: the robustness gate passes, so the other gates decide."""


def promote(windows, env, model_dir, config=None, eod=0.05, robust=ROBUST):
    return promote_step(
        model_dir,
        windows["test"],
        eod,
        robust,
        config or GateKnobs(),
        env["tracking_uri"],
        env["model"],
        env["serving_root"],
    )


def champion_version(env) -> str:
    return str(registry.client(env["tracking_uri"]).get_model_version_by_alias(env["model"], "champion").version)


def versions(env) -> list[str]:
    found = registry.client(env["tracking_uri"]).search_model_versions(f"name='{env['model']}'")
    return sorted(str(v.version) for v in found)


def test_first_run_promotes_and_exports(windows, env, candidates):
    first = promote(windows, env, candidates["c1"])
    assert first.decision.promoted and first.decision.reason == "first champion"
    assert champion_version(env) == "1"
    assert first.serving_uri == f"{env['serving_root']}/v1"
    _, meta = modeldir.load_model_dir(Path(env["serving_root"]) / "champion")
    assert meta.model_version == "1" and meta.model_name == env["model"]
    assert "| quality | " in first.markdown and "no champion yet" in first.markdown


@pytest.mark.slow
def test_identical_rerun_neither_demotes_nor_duplicates(windows, env, candidates):
    promote(windows, env, candidates["c1"])
    before = tree_digest(Path(env["serving_root"]))
    again = promote(windows, env, candidates["c2"])
    assert not again.decision.promoted and again.decision.identical_to_champion
    assert "byte-identical to champion version 1" in again.decision.reason
    assert versions(env) == ["1"] and champion_version(env) == "1"
    assert tree_digest(Path(env["serving_root"])) == before


@pytest.mark.slow
def test_poisoned_candidate_is_challenger_and_changes_nothing(windows, env, candidates):
    promote(windows, env, candidates["c1"])
    client = registry.client(env["tracking_uri"])
    alias_before = client.get_model_version_by_alias(env["model"], "champion")
    served_before = tree_digest(Path(env["serving_root"]))
    bad = promote(windows, env, candidates["bad"])
    assert not bad.decision.promoted
    failed = [g.name for g in bad.decision.gates if not g.passed]
    assert "quality" in failed
    assert bad.decision.candidate_version == "2"
    assert str(client.get_model_version_by_alias(env["model"], "challenger").version) == "2"
    alias_after = client.get_model_version_by_alias(env["model"], "champion")
    assert (alias_after.version, alias_after.run_id, alias_after.source) == (
        alias_before.version,
        alias_before.run_id,
        alias_before.source,
    )
    assert tree_digest(Path(env["serving_root"])) == served_before
    assert not (Path(env["serving_root"]) / "v2").exists()


@pytest.mark.slow
def test_fairness_alone_blocks_promotion(windows, env, candidates):
    promote(windows, env, candidates["c1"])
    lenient_quality = replace(GateKnobs(), auprc_tolerance=1.0, min_auprc=0.0)
    other = candidates["other"]
    result = promote(windows, env, other, config=lenient_quality, eod=0.40)
    assert [g.name for g in result.decision.gates if not g.passed] == ["fairness"]
    assert not result.decision.promoted and champion_version(env) == "1"
    # The same candidate with a fair audit is promoted: fairness really was the only blocker.
    fair = promote(windows, env, other, config=lenient_quality, eod=0.05)
    assert fair.decision.promoted and champion_version(env) == fair.decision.candidate_version


def test_gates_report_what_they_could_not_measure_and_a_missing_robustness_value_blocks():
    gates = promotion.evaluate_gates(0.8, None, None, None, None, GateKnobs())
    notes = {g.name: (g.passed, g.note) for g in gates}
    assert notes["quality"] == (True, "no champion yet")
    assert notes["fairness"] == (
        True,
        "not measurable: no sensitive attribute in the data, or fewer than two groups to compare",
    )
    assert notes["robustness"] == (False, "not measured: the poison sweep has no result at 5%")


def test_robustness_gate_blocks_a_fragile_model():
    config = GateKnobs(min_robust_fraction=0.8)
    gates = promotion.evaluate_gates(0.8, 0.79, 0.05, 0.5, 0.8, config)
    decision = promotion.decide(gates, 0.8, 0.79, "3", identical_to_champion=False)
    assert not decision.promoted and "robustness" in decision.reason
    assert next(g for g in gates if g.name == "robustness").value == pytest.approx(0.625)
