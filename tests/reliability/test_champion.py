"""The champion pointer's compare-and-set, locally (flock, atomic rename) and on gs:// (generation preconditions)."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from fraud_detection import champion, modeldir, storage


@pytest.fixture(params=["local", "gs"])
def root(request, tmp_path) -> str:
    if request.param == "local":
        return str(tmp_path / "serving")
    bucket = request.getfixturevalue("gcs_bucket")
    return f"gs://{bucket}/cas/{request.node.name}-{tmp_path.name}"


def test_a_move_succeeds_only_from_what_was_read(root: str) -> None:
    empty = champion.read(root)
    assert empty == champion.Observed(None, 0)
    first = champion.compare_and_set(root, empty, champion.Champion("1", f"{root}/v1", "run-1"))
    assert champion.read(root) == first and first.champion is not None and first.token != 0
    # A second writer that read the empty pointer has lost: it is told what the champion is now.
    with pytest.raises(champion.ChampionMoved, match="moved to version 1") as lost:
        champion.compare_and_set(root, empty, champion.Champion("2", f"{root}/v2", "run-2"))
    assert lost.value.current == first
    second = champion.compare_and_set(root, first, champion.Champion("3", f"{root}/v3", "run-3"))
    assert champion.read(root) == second and second.token != first.token
    with pytest.raises(champion.ChampionMoved):
        champion.compare_and_set(root, first, champion.Champion("4", f"{root}/v4", "run-4"))
    assert champion.read(root).champion == champion.Champion("3", f"{root}/v3", "run-3")


def test_local_move_switches_the_served_link_too(tmp_path: Path) -> None:
    root = tmp_path / "serving"
    moved = champion.compare_and_set(str(root), champion.read(str(root)), champion.Champion("7", str(root / "v7")))
    assert (root / champion.LINK).readlink() == Path("v7")
    assert json.loads((root / champion.POINTER_FILE).read_text())["generation"] == moved.token == 1
    assert sorted(p.name for p in root.iterdir()) == [champion.LOCK_FILE, champion.LINK, champion.POINTER_FILE]


def test_gs_write_carries_the_generation_it_read(gcs_bucket: str) -> None:
    uri = f"gs://{gcs_bucket}/cas/raw.json"
    generation = storage.write_if_generation(uri, b"{}", 0)
    with pytest.raises(storage.PreconditionFailed):
        storage.write_if_generation(uri, b"{}", 0)  # create-only, and it exists
    with pytest.raises(storage.PreconditionFailed):
        storage.write_if_generation(uri, b"{}", generation + 1)
    assert storage.write_if_generation(uri, b"[]", generation) != generation
    assert storage.read_with_generation(uri)[0] == b"[]"


def model_dir(tmp_path: Path, name: str, payload: bytes) -> Path:
    folder = tmp_path / name
    folder.mkdir()
    (folder / modeldir.MODEL_FILE).write_bytes(payload)
    metadata = modeldir.ModelMetadata(model_version="candidate", threshold=0.5)
    (folder / modeldir.METADATA_FILE).write_text(metadata.model_dump_json())
    return folder


def test_exports_are_immutable(root: str, tmp_path: Path) -> None:
    one = model_dir(tmp_path, "one", b"model one")
    target = f"{root}/v1"
    modeldir.export_model_dir(one, target)
    modeldir.export_model_dir(one, target)  # the same files again: a retried export passes
    with pytest.raises(modeldir.ModelDirError, match="immutable"):
        modeldir.export_model_dir(model_dir(tmp_path, "two", b"model two"), target)
    copy = storage.download_dir(target, tmp_path / "copy")
    assert (copy / modeldir.MODEL_FILE).read_bytes() == b"model one"
