"""``fraud monitor …`` run as a user runs it (``python -m cli.main`` in a subprocess): every command's help, a
labels file imported (duplicates and out-of-order rows included) and read back as a known AUPRC by ``status``,
the joiner and the controller started by the CLI, and the Evidently report rendered in Chromium."""

from __future__ import annotations

import csv
import json
import os
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import requests
from sklearn.metrics import average_precision_score

from fraud_detection.monitoring import join, labels
from tests.conftest import free_port, stop_process
from tests.monitoring.traffic import labels_of, scored

REPO = Path(__file__).resolve().parents[2]
WAIT = 60.0


def fraud(*args: str, home: Path, timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``fraud ARGS`` with FRAUD_HOME at ``home`` (no FRAUD_DB from the caller's environment)."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")} | {"FRAUD_HOME": str(home)}
    return subprocess.run(
        [sys.executable, "-m", "cli.main", *args], cwd=REPO, env=env, capture_output=True, text=True, timeout=timeout
    )


def _write_labels(path: Path, given: list[labels.Label]) -> Path:
    """The labels as a CSV, each written twice and in reverse order (an import must not care)."""
    with path.open("w", newline="") as handle:
        writer = csv.writer(handle)
        writer.writerow(["tx_id", "label", "label_time"])
        for label in [*reversed(given), *given]:
            writer.writerow([label.tx_id, label.label, label.label_time.isoformat()])
    return path


@pytest.fixture
def scored_store(tmp_path: Path) -> tuple[Path, Path, float]:
    """A store of matured champion (default) and challenger (shadow) records without labels, the labels file,
    and the champion's AUPRC once the labels are in."""
    start = datetime.now(UTC) - timedelta(days=45)
    champion, outcome = scored(3000, seed=7, start=start)
    challenger, _ = scored(3000, seed=7, start=start, version="4", endpoint="shadow")
    store = join.JoinStore(tmp_path / "home" / "monitor" / "join.sqlite")
    store.add_records(champion + challenger)
    store.close()
    expected = float(average_precision_score(outcome, [r.data.probability for r in champion]))
    return tmp_path / "home", _write_labels(tmp_path / "labels.csv", labels_of(outcome, start)), expected


@pytest.mark.parametrize(
    ("command", "option"),
    [
        ("joiner", "--bootstrap-servers"),
        ("controller", "--token-file"),
        ("import-labels", "FILE"),
        ("status", "--json"),
        ("report", "--output"),
    ],
)
def test_every_monitor_command_has_help_naming_its_options(command: str, option: str, tmp_path: Path) -> None:
    result = fraud("monitor", command, "--help", home=tmp_path)
    assert result.returncode == 0, result.stderr
    assert f"usage: fraud monitor {command}" in result.stdout
    assert option in result.stdout
    assert fraud("monitor", "--help", home=tmp_path).stdout.count(command) >= 1


def test_imported_labels_give_the_known_auprc_in_status(scored_store: tuple[Path, Path, float]) -> None:
    home, labels_file, expected = scored_store
    before = json.loads(fraud("monitor", "status", "--json", "--cohort-days", "90", home=home).stdout)
    assert {(r["model_version"], r["label_coverage"]) for r in before["realised"]} == {("3", 0.0), ("4", 0.0)}

    imported = fraud("monitor", "import-labels", str(labels_file), home=home)
    assert imported.returncode == 0, imported.stderr
    assert "stored" in imported.stdout and str(home / "monitor" / "join.sqlite") in imported.stdout
    assert fraud("monitor", "import-labels", str(labels_file), home=home).returncode == 0  # again: no change

    status = fraud("monitor", "status", "--json", "--cohort-days", "90", "--resamples", "20", home=home)
    assert status.returncode == 0, status.stderr
    found = json.loads(status.stdout)
    [champion] = [r for r in found["realised"] if r["endpoint"] == "default"]
    assert champion["model_version"] == "3" and champion["rows"] == 3000
    assert champion["auprc"] == pytest.approx(expected, abs=1e-12)
    assert 0.3 < champion["label_coverage"] < 1
    [pair] = found["shadow"]
    assert (pair["champion_version"], pair["challenger_version"], pair["pairs"]) == ("3", "4", 3000)

    text = fraud("monitor", "status", "--cohort-days", "90", "--resamples", "20", home=home).stdout
    assert "matured cohort (realised)" in text and f"{expected:.4f}" in text
    assert "shadow: challenger 4 - champion 3" in text


def test_a_bad_labels_file_is_refused_naming_its_line(scored_store: tuple[Path, Path, float], tmp_path: Path) -> None:
    home, _, _ = scored_store
    bad = tmp_path / "bad.csv"
    bad.write_text("tx_id,label,label_time\ntx-1,1,2026-01-01T00:00:00Z\ntx-2,maybe,2026-01-01T00:00:00Z\n")
    result = fraud("monitor", "import-labels", str(bad), home=home)
    assert result.returncode == 1
    assert "bad.csv line 3" in result.stderr
    missing = fraud("monitor", "import-labels", str(tmp_path / "none.csv"), home=home)
    assert missing.returncode == 1 and "no such file" in missing.stderr


def test_status_without_a_store_says_how_to_make_one(tmp_path: Path) -> None:
    result = fraud("monitor", "status", home=tmp_path)
    assert result.returncode == 1
    assert "no join store yet" in result.stderr


@pytest.fixture
def started() -> Iterator[list[subprocess.Popen[bytes]]]:
    processes: list[subprocess.Popen[bytes]] = []
    yield processes
    for process in processes:
        stop_process(process, timeout=10)


def _start(processes: list[subprocess.Popen[bytes]], home: Path, log: Path, *args: str) -> subprocess.Popen[bytes]:
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")} | {"FRAUD_HOME": str(home)}
    process = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "monitor", *args],
        cwd=REPO,
        env=env,
        stdout=log.open("w"),
        stderr=subprocess.STDOUT,
    )
    processes.append(process)
    return process


def _wait_for(url: str, process: subprocess.Popen[bytes], log: Path, wanted: str) -> str:
    deadline = time.monotonic() + WAIT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise AssertionError(f"exited {process.returncode}: {log.read_text()[-2000:]}")
        try:
            text = requests.get(url, timeout=5).text
            if wanted in text:
                return text
        except requests.RequestException:
            pass
        time.sleep(0.3)
    raise AssertionError(f"{url} never showed {wanted!r}: {log.read_text()[-2000:]}")


@pytest.mark.slow
def test_the_joiner_command_serves_the_imported_labels_metrics(
    scored_store: tuple[Path, Path, float], started: list[subprocess.Popen[bytes]], tmp_path: Path
) -> None:
    home, labels_file, expected = scored_store
    assert fraud("monitor", "import-labels", str(labels_file), home=home).returncode == 0
    port = free_port()
    log = tmp_path / "joiner.log"
    joiner = _start(
        started, home, log, "joiner", "--metrics-port", str(port), "--cohort-days", "90", "--refresh-seconds", "1",
        "--resamples", "20",
    )  # fmt: skip
    text = _wait_for(f"http://127.0.0.1:{port}/metrics", joiner, log, "fraud_live_auprc{")
    [line] = [x for x in text.splitlines() if x.startswith("fraud_live_auprc{") and 'endpoint="default"' in x]
    assert float(line.rsplit(" ", 1)[1]) == pytest.approx(expected, abs=1e-9)


@pytest.mark.slow
def test_the_controller_command_answers_and_refuses_a_call_without_its_token(
    tmp_path: Path, started: list[subprocess.Popen[bytes]]
) -> None:
    missing = fraud("monitor", "controller", "--token-file", str(tmp_path / "none"), home=tmp_path)
    assert missing.returncode == 1 and "none" in missing.stderr
    token = tmp_path / "token"
    token.write_text("s3cret\n")
    port = free_port()
    log = tmp_path / "controller.log"
    controller = _start(
        started, tmp_path, log, "controller", "--token-file", str(token), "--port", str(port),
        "--state", str(tmp_path / "controller.sqlite"), "--retrain-command", "true",
    )  # fmt: skip
    _wait_for(f"http://127.0.0.1:{port}/healthz", controller, log, "ok")
    body = {"version": "4", "groupKey": "g", "status": "firing", "alerts": []}
    assert requests.post(f"http://127.0.0.1:{port}/alerts", json=body, timeout=5).status_code == 401
    answer = requests.post(
        f"http://127.0.0.1:{port}/alerts", json=body, headers={"Authorization": "Bearer s3cret"}, timeout=5
    )
    assert answer.status_code == 200 and answer.json() == {"actions": []}


@pytest.mark.slow
def test_the_report_command_writes_an_evidently_report_that_renders_offline(
    scored_store: tuple[Path, Path, float], tmp_path: Path
) -> None:
    from tests.audits import chromium

    if chromium.chromium_binary() is None:
        pytest.skip("needs Debian's chromium (apt-get install -y chromium)")
    home, labels_file, expected = scored_store
    assert fraud("monitor", "import-labels", str(labels_file), home=home).returncode == 0
    result = fraud("monitor", "report", "--cohort-days", "90", "--output", str(tmp_path / "reports"), home=home)
    assert result.returncode == 0, result.stderr
    [folder] = (tmp_path / "reports").iterdir()
    assert str(folder) in result.stdout
    assert sorted(p.name for p in folder.iterdir()) == ["3-default.html", "4-shadow.html", "index.html", "summary.json"]
    index = chromium.render(folder / "index.html")
    assert index.errors == [] and f"{expected:.4f}" in index.dom and 'href="3-default.html"' in index.dom
    page = chromium.render(folder / "3-default.html")
    assert page.errors == [], page.errors
    assert page.external_refs == [], "the Evidently report must not load scripts or styles from a CDN"
    assert page.plotly_plots > 0, "Evidently's JavaScript did not draw any chart"
    assert "Precision" in page.dom and "Recall" in page.dom


def test_the_report_cronjob_runs_the_report_on_the_joiners_store_and_cohort() -> None:
    from tests.cluster.checks import kustomize

    docs = kustomize(REPO / "manifests" / "overlays" / "loop")

    def env_of(pod: dict[str, Any]) -> tuple[list[str], dict[str, str]]:
        [container] = pod["containers"]
        return container["command"], {e["name"]: e.get("value", "") for e in container.get("env", [])}

    [cronjob] = [d for d in docs if d["kind"] == "CronJob" and d["metadata"]["name"] == "fraud-live-report"]
    [joiner] = [d for d in docs if d["kind"] == "Deployment" and d["metadata"]["name"] == "fraud-joiner"]
    command, env = env_of(cronjob["spec"]["jobTemplate"]["spec"]["template"]["spec"])
    _, joiner_env = env_of(joiner["spec"]["template"]["spec"])
    assert command == ["python", "-m", "monitor.report"]
    for name in ("FRAUD_DB", "FRAUD_MATURITY_HOURS", "FRAUD_COHORT_DAYS"):
        assert env[name] == joiner_env[name], name
    assert env["FRAUD_OUTPUT"].startswith("gs://")
    assert joiner_env["FRAUD_REFERENCE_URI"] == "models:/fraud-detector@champion"
    result = subprocess.run([sys.executable, *command[1:], "--help"], cwd=REPO, capture_output=True, text=True)
    assert result.returncode == 0 and "--output" in result.stdout and "FRAUD_DB" in result.stdout
