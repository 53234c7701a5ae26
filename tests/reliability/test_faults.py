"""Faults met by real processes: the tracking server killed and restarted mid-step, the step itself killed with
SIGKILL mid-export, a gs:// upload cut off mid-way, the disk full during export. Each test runs the scenario with
the fix and then against the unfixed code path, and shows the harm the fix prevents."""

from __future__ import annotations

import contextlib
import json
import os
import socket
import subprocess
import sys
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from fraud_detection import champion, modeldir, registry
from fraud_detection.config import GateKnobs
from fraud_detection.steps.promote import promote_step
from tests.conftest import free_port
from tests.reliability.conftest import MlflowServer

REPO = Path(__file__).resolve().parents[2]


def by_quality(candidates: dict[str, Path]) -> list[str]:
    """Candidate names, worst test AUPRC first (the train step recorded it in each model's metadata)."""
    return sorted(candidates, key=lambda n: modeldir.read_metadata(candidates[n]).metrics["test_auprc"])


def promote(candidates, windows, name: str, tracking_uri: str, model: str, root: str) -> Any:
    return promote_step(candidates[name], windows["test"], 0.05, 1.0, GateKnobs(), tracking_uri, model, root)


def drive(
    config: dict[str, Any],
    tmp_path: Path,
    env: dict[str, str] | None = None,
    wrap: list[str] | None = None,
    background: bool = False,
) -> Any:
    """Run tests/reliability/driver.py in its own process with ``config``."""
    path = tmp_path / f"driver-{time.monotonic_ns()}.json"
    path.write_text(json.dumps(config))
    command = [*(wrap or []), sys.executable, "-m", "tests.reliability.driver", str(path)]
    environment = {**os.environ, "PYTHONPATH": str(REPO), **(env or {})}
    if background:
        return subprocess.Popen(
            command, cwd=REPO, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True
        )
    return subprocess.run(command, cwd=REPO, env=environment, capture_output=True, text=True, timeout=300)


def outcome(stdout: str) -> dict[str, Any]:
    lines = [line for line in stdout.splitlines() if line.startswith("{")]
    return json.loads(lines[-1]) if lines else {}


def tag(tracking_uri: str, model: str, version: str, key: str) -> str | None:
    return registry.client(tracking_uri).get_model_version(model, version).tags.get(key)


# --- the tracking server restarts ---------------------------------------------------------------------------


def restart_mid_step(server: MlflowServer, candidates, windows, tmp_path, model: str, no_retry: bool) -> dict[str, Any]:
    """The first champion, then a better candidate whose step pauses after registering; meanwhile the server is
    killed with SIGKILL and started again 3 s later."""
    order = by_quality(candidates)
    root = str(tmp_path / f"serving-{model}")
    assert promote(candidates, windows, order[0], server.url, model, root).decision.promoted
    config = {
        "candidate": str(candidates[order[-1]]),
        "test": str(windows["test"]),
        "tracking_uri": server.url,
        "model": model,
        "serving_root": root,
        "wait_at": "registered",
        "marker": str(tmp_path / f"{model}.paused"),
        "go": str(tmp_path / f"{model}.go"),
        "no_retry": no_retry,
    }
    # MLflow's own HTTP retries are off, so what is measured is this project's retry layer.
    step = drive(config, tmp_path, env={"MLFLOW_HTTP_REQUEST_MAX_RETRIES": "0"}, background=True)
    deadline = time.monotonic() + 120
    while not Path(config["marker"]).exists():
        assert step.poll() is None, step.communicate()
        assert time.monotonic() < deadline, "the step never reached its pause"
        time.sleep(0.05)
    server.kill()
    Path(config["go"]).touch()
    time.sleep(3)
    started = time.monotonic()
    server.start()
    server.wait_healthy()
    print(f"tracking server down {3 + time.monotonic() - started:.1f} s")
    stdout, stderr = step.communicate(timeout=180)
    return {"code": step.returncode, "result": outcome(stdout), "stderr": stderr, "root": root}


@pytest.mark.slow
def test_tracking_server_restart_mid_step_is_retried(shared_server, candidates, windows, tmp_path):
    model = "restart-fix"
    run = restart_mid_step(shared_server, candidates, windows, tmp_path, model, no_retry=False)
    assert run["code"] == 0 and run["result"] == {"promoted": True, "version": "2"}, run
    assert "failed (attempt 1 of 8)" in run["stderr"]
    client = registry.client(shared_server.url)
    assert sorted(v.version for v in client.search_model_versions(f"name='{model}'")) == ["1", "2"]
    assert (
        registry.alias_version(client, model, registry.CHAMPION) == champion.read(run["root"]).champion.version == "2"
    )
    assert tag(shared_server.url, model, "2", "promoted") == "true"


@pytest.mark.slow
def test_without_retries_a_restart_leaves_the_alias_behind(shared_server, candidates, windows, tmp_path):
    model = "restart-nofix"
    run = restart_mid_step(shared_server, candidates, windows, tmp_path, model, no_retry=True)
    assert run["code"] == 1 and "RegistryUnavailable" in run["result"]["error"], run
    client = registry.client(shared_server.url)
    # The harm: the step died half-way; the pointer moved but the alias and the version's tag never followed.
    assert champion.read(run["root"]).champion.version == "2"
    assert registry.alias_version(client, model, registry.CHAMPION) == "1"
    assert tag(shared_server.url, model, "2", "promoted") is None
    # The next run (the fixed step, as a KFP retry would run it) repairs it without a second version.
    again = promote(candidates, windows, by_quality(candidates)[-1], shared_server.url, model, run["root"])
    assert again.decision.identical_to_champion
    assert registry.alias_version(client, model, registry.CHAMPION) == "2"
    assert sorted(v.version for v in client.search_model_versions(f"name='{model}'")) == ["1", "2"]


# --- kill -9 during export ---------------------------------------------------------------------------------


class Reader(threading.Thread):
    """Loads the served champion (the local `champion` link) in a loop and records every failure."""

    def __init__(self, root: Path) -> None:
        super().__init__(daemon=True)
        self.root, self.stop, self.loads, self.failures = root, threading.Event(), 0, []

    def run(self) -> None:
        while not self.stop.is_set():
            try:
                modeldir.load_model_dir(self.root / champion.LINK)
                self.loads += 1
            except Exception as error:
                self.failures.append(repr(error))


def killed_mid_export(candidates, windows, tracking_uri, tmp_path, model: str, unstaged: bool) -> tuple[Path, Reader]:
    order = by_quality(candidates)
    root = tmp_path / f"serving-{model}"
    assert promote(candidates, windows, order[0], tracking_uri, model, str(root)).decision.promoted
    reader = Reader(root)
    reader.start()
    config = {
        "candidate": str(candidates[order[-1]]),
        "test": str(windows["test"]),
        "tracking_uri": tracking_uri,
        "model": model,
        "serving_root": str(root),
        "kill_after_copies": 1,
        "unstaged_export": unstaged,
    }
    step = drive(config, tmp_path)
    reader.stop.set()
    reader.join(timeout=10)
    assert step.returncode == -9, (step.returncode, step.stderr[-2000:])
    return root, reader


@pytest.mark.slow
def test_kill_during_export_is_never_seen_and_the_next_run_recovers(candidates, windows, tracking_uri, tmp_path):
    model = "kill-fix"
    root, reader = killed_mid_export(candidates, windows, tracking_uri, tmp_path, model, unstaged=False)
    assert reader.loads > 0 and reader.failures == []
    assert not (root / "v2").exists() and list(root.glob(".v2.partial-*")), sorted(p.name for p in root.iterdir())
    assert champion.read(str(root)).champion.version == "1" and (root / champion.LINK).readlink() == Path("v1")
    assert tag(tracking_uri, model, "2", "promoted") is None  # registered, undecided: not a false "true"
    again = promote(candidates, windows, by_quality(candidates)[-1], tracking_uri, model, str(root))
    assert again.decision.promoted and again.decision.candidate_version == "2"  # the same version, reused
    assert not list(root.glob(".v2.partial-*"))
    assert modeldir.load_model_dir(root / champion.LINK)[1].model_version == "2"


@pytest.mark.slow
def test_without_staging_a_kill_leaves_a_partial_version(candidates, windows, tracking_uri, tmp_path):
    root, _ = killed_mid_export(candidates, windows, tracking_uri, tmp_path, "kill-nofix", unstaged=True)
    with pytest.raises(modeldir.ModelDirError, match="missing"):
        modeldir.load_model_dir(root / "v2")  # the harm: whoever is given v2's URI reads half a model


# --- a gs:// upload cut off -------------------------------------------------------------------------------


class CuttingProxy(threading.Thread):
    """A TCP proxy in front of the storage emulator that cuts, once, the connection carrying an upload whose body
    names ``marker``. ``mode="body"``: half of that chunk goes through, then both sockets close (the upload is cut
    off mid-way). ``mode="response"``: the whole request goes through and the server acts on it, but its answer is
    dropped and both sockets close (the write landed; the client cannot know)."""

    def __init__(self, upstream: tuple[str, int], marker: bytes, mode: str) -> None:
        super().__init__(daemon=True)
        self.upstream, self.marker, self.mode, self.cuts = upstream, marker, mode, 0
        self.listener = socket.create_server(("127.0.0.1", free_port()))
        self.port = self.listener.getsockname()[1]
        self.listener.settimeout(0.2)
        self.closed = threading.Event()

    def run(self) -> None:
        while not self.closed.is_set():
            try:
                client, _ = self.listener.accept()
            except (TimeoutError, OSError):
                continue
            upstream = socket.create_connection(self.upstream)
            state = {"drop": False, "upload": False}
            threading.Thread(target=self.pump, args=(client, upstream, True, state), daemon=True).start()
            threading.Thread(target=self.pump, args=(upstream, client, False, state), daemon=True).start()

    def pump(self, source: socket.socket, sink: socket.socket, outbound: bool, state: dict[str, bool]) -> None:
        try:
            while chunk := source.recv(1 << 16):
                if outbound and chunk[:8] in (b"POST /up", b"GET /dow", b"GET /sto", b"PUT /upl", b"DELETE /"):
                    state["upload"] = chunk.startswith(b"POST /upload")
                if outbound and self.cuts == 0 and state["upload"] and self.marker in chunk:
                    self.cuts += 1
                    if self.mode == "body":
                        sink.sendall(chunk[: len(chunk) // 2])
                        break
                    state["drop"] = True
                if not outbound and state["drop"]:
                    break
                sink.sendall(chunk)
        except OSError:
            pass
        for end in (source, sink):
            with contextlib.suppress(OSError):
                end.shutdown(socket.SHUT_RDWR)
            end.close()

    def close(self) -> None:
        self.closed.set()
        self.listener.close()


@pytest.fixture()
def proxies() -> Iterator[list[CuttingProxy]]:
    """Proxies stay up (passing traffic through) until the test ends: the emulator names the host an object was
    written through in its media links, which later downloads follow."""
    started: list[CuttingProxy] = []
    yield started
    for proxy in started:
        proxy.close()


def through_proxy(
    candidates, windows, tracking_uri, gcs_bucket, monkeypatch, model: str, marker: bytes, mode: str, proxies
):
    """The first champion directly, then a better candidate's promotion through a proxy that cuts once."""
    order = by_quality(candidates)
    root = f"gs://{gcs_bucket}/cut/{model}-{time.monotonic_ns()}"
    assert promote(candidates, windows, order[0], tracking_uri, model, root).decision.promoted
    host, port = os.environ["STORAGE_EMULATOR_HOST"].removeprefix("http://").split(":")
    proxy = CuttingProxy((host, int(port)), marker, mode)
    proxy.start()
    proxies.append(proxy)
    with monkeypatch.context() as patch:
        patch.setenv("STORAGE_EMULATOR_HOST", f"http://127.0.0.1:{proxy.port}")
        result = promote(candidates, windows, order[-1], tracking_uri, model, root)
    assert proxy.cuts == 1
    return root, result


@pytest.mark.slow
def test_gs_upload_cut_mid_way_is_retried_whole(candidates, windows, tracking_uri, gcs_bucket, monkeypatch, proxies):
    marker = f"/v2/{modeldir.MODEL_FILE}".encode()
    root, result = through_proxy(
        candidates, windows, tracking_uri, gcs_bucket, monkeypatch, "cut-body", marker, "body", proxies
    )
    assert result.decision.promoted and champion.read(root).champion.version == "2"
    served = modeldir.fetch_model_dir(champion.read(root).champion.uri)
    assert registry.same_model(served, candidates[by_quality(candidates)[-1]])


def pointer_write_lost(candidates, windows, tracking_uri, gcs_bucket, monkeypatch, model: str, proxies):
    marker = champion.POINTER_FILE.encode()
    return through_proxy(candidates, windows, tracking_uri, gcs_bucket, monkeypatch, model, marker, "response", proxies)


@pytest.mark.slow
def test_gs_pointer_write_whose_answer_is_lost_counts_as_done(
    candidates, windows, tracking_uri, gcs_bucket, monkeypatch, proxies
):
    root, result = pointer_write_lost(candidates, windows, tracking_uri, gcs_bucket, monkeypatch, "lost-fix", proxies)
    # The client library retried the conditional write; it met its own landed write (412) and saw it was its own.
    assert result.decision.promoted and champion.read(root).champion.version == "2"
    assert modeldir.load_model_dir(modeldir.fetch_model_dir(champion.read(root).champion.uri))[1].model_version == "2"


@pytest.mark.slow
def test_without_recognising_its_own_write_the_new_champion_is_reported_not_promoted(
    candidates, windows, tracking_uri, gcs_bucket, monkeypatch, proxies
):
    monkeypatch.setattr(champion, "_is_own_write", lambda current, new: False)
    root, result = pointer_write_lost(candidates, windows, tracking_uri, gcs_bucket, monkeypatch, "lost-nofix", proxies)
    # The harm: the step took its own landed write for a rival's, evaluated again against itself and reported
    # "not promoted" while the pointer names it: the pipeline skips deploy (the cluster keeps serving version 1)
    # and the champion's version is tagged promoted=false.
    assert not result.decision.promoted and result.decision.identical_to_champion
    assert champion.read(root).champion.version == "2"
    assert tag(tracking_uri, "lost-nofix", "2", "promoted") == "false"


# --- the disk fills during export --------------------------------------------------------------------------

DISK_FULL_SCRIPT = """
set -e
mount -t tmpfs -o size={size} tmpfs {root}
{python} -m tests.reliability.driver {first}
set +e
{python} -m tests.reliability.driver {second}
{python} -m tests.reliability.driver --state {root}
"""


def disk_full(
    candidates, windows, tracking_uri, tmp_path, model: str, unstaged: bool
) -> tuple[list[dict[str, Any]], str]:
    """In a private mount namespace, the serving root is a tmpfs with room for the first champion and half the
    next one: the first promotion fits, the second meets ENOSPC in the middle of its model file."""
    order = by_quality(candidates)
    first, second = candidates[order[0]], candidates[order[-1]]
    used = sum(p.stat().st_size for p in first.rglob("*")) + 4 * 4096
    size = (used + (second / modeldir.MODEL_FILE).stat().st_size // 2) // 4096 * 4096
    root = tmp_path / f"serving-{model}"
    root.mkdir()
    configs = []
    for name, candidate in (("first", first), ("second", second)):
        config = {
            "candidate": str(candidate),
            "test": str(windows["test"]),
            "tracking_uri": tracking_uri,
            "model": model,
            "serving_root": str(root),
            "unstaged_export": unstaged,
        }
        path = tmp_path / f"{model}-{name}.json"
        path.write_text(json.dumps(config))
        configs.append(str(path))
    script = DISK_FULL_SCRIPT.format(size=size, root=root, python=sys.executable, first=configs[0], second=configs[1])
    done = subprocess.run(
        ["unshare", "--mount", "--propagation", "private", "sh", "-c", script],
        cwd=REPO,
        env={**os.environ, "PYTHONPATH": str(REPO)},
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-3000:]
    return [json.loads(line) for line in done.stdout.splitlines() if line.startswith("{")], str(root)


def has_unshare() -> bool:
    probe = subprocess.run(["unshare", "--mount", "true"], capture_output=True)
    return probe.returncode == 0


needs_mount_namespace = pytest.mark.skipif(not has_unshare(), reason="needs root for a private mount namespace")


@pytest.mark.slow
@needs_mount_namespace
def test_disk_full_during_export_is_a_clear_error_and_leaves_the_champion(candidates, windows, tracking_uri, tmp_path):
    model = "full-fix"
    (first, second, state), _root = disk_full(candidates, windows, tracking_uri, tmp_path, model, unstaged=False)
    assert first == {"promoted": True, "version": "1"}
    assert "No space left on device" in second["error"] and "nothing was exported" in second["error"], second
    assert state == {
        "listing": [champion.LOCK_FILE, "champion", champion.POINTER_FILE, "v1"],
        "pointer": "1",
        "link": "v1",
    }
    assert registry.alias_version(registry.client(tracking_uri), model, registry.CHAMPION) == "1"
    assert tag(tracking_uri, model, "2", "promoted") is None


@pytest.mark.slow
@needs_mount_namespace
def test_without_staging_a_full_disk_leaves_a_partial_version(candidates, windows, tracking_uri, tmp_path):
    (_, second, state), _ = disk_full(candidates, windows, tracking_uri, tmp_path, "full-nofix", unstaged=True)
    assert "No space left on device" in second["error"]
    assert "v2" in state["listing"]  # the harm: half a model directory left under the version's name
