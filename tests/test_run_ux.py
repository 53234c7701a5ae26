"""What a person sees of a run: live progress on a terminal, a short plain log elsewhere, one report page, the
MLflow UI and the list of past runs, and the data lineage from the KFP artifact into MLflow."""

from __future__ import annotations

import fcntl
import json
import os
import re
import select
import signal
import struct
import subprocess
import sys
import termios
import threading
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path

import pytest

from fraud_detection.config import defaults
from pipelines.local import _Capture, fan_out_sizes
from pipelines.progress import LiveProgress, PlainProgress
from tests.doc_commands import OUTER_MAKE

ROOT = Path(__file__).resolve().parents[1]
MAX_LINES = 60
COLUMNS, ROWS = 120, 400
"""The pseudo-terminal's size: tall enough that nothing scrolls away, so every line printed stays countable."""


# ---- fast: the progress displays --------------------------------------------------------------------------------


def test_fan_out_sizes_come_from_the_pipeline_spec() -> None:
    parameters = defaults()
    assert fan_out_sizes(parameters) == {
        "poison-level": len(parameters["poison_levels"]),
        "train-family": len(parameters["families"]),
    }
    assert fan_out_sizes({**parameters, "poison_levels": [0, 0.05], "families": ["xgboost"]}) == {
        "poison-level": 2,
        "train-family": 1,
    }


def test_tasks_printing_on_threads_keep_every_line_whole(tmp_path: Path) -> None:
    """A ParallelFor's tasks print from threads at once: the log stays valid UTF-8, no line is lost, and each
    task's start and finish is heard."""
    threads, lines_each = 8, 400

    heard: dict[str, list[str]] = {"started": [], "finished": []}

    class Listener:
        def started(self, task: str) -> None:
            heard["started"].append(task)

        def finished(self, task: str, ok: bool) -> None:
            heard["finished"].append(task)

    log_path = tmp_path / "run.log"
    with log_path.open("w", encoding="utf-8") as log:
        capture = _Capture(log, Listener(), echo=None)

        def task(n: int) -> None:
            capture.write(f"12:00:00.000 - INFO - Executing task 'train-{n}'\n")
            for i in range(lines_each):
                # a whole line per write, as a logging handler writes, with characters of two to four bytes
                capture.write(f"task {n} line {i} Δ→✓🙂\n")
            capture.write(f"12:00:01.000 - INFO - Task 'train-{n}' finished with status SUCCESS\n")

        workers = [threading.Thread(target=task, args=(n,)) for n in range(threads)]
        for worker in workers:
            worker.start()
        for worker in workers:
            worker.join()
    text = log_path.read_text(encoding="utf-8")
    for n in range(threads):
        assert sum(f"task {n} line " in line and line.endswith("Δ→✓🙂") for line in text.splitlines()) == lines_each
    assert sorted(heard["started"]) == sorted(heard["finished"]) == sorted(f"train-{n}" for n in range(threads))
    assert all(step.started == 1 and step.wall_seconds >= 0 for step in capture.steps.values())


def test_plain_progress_prints_each_step_once_several_to_a_line(tmp_path: Path) -> None:
    out = (tmp_path / "out.txt").open("w+")
    steps = ["load-data", "train-model", "fairness-audit", "drift-check", "poison-collect", "evaluate-and-promote"]
    with PlainProgress(out, {"poison-level": 3}) as progress:
        for name in steps[:2]:
            progress.started(name)
            progress.finished(name, True)
        for _ in range(3):
            progress.started("poison-level")
        for _ in range(3):
            progress.finished("poison-level", True)
        for name in steps[2:]:
            progress.started(name)
            progress.finished(name, True)
        progress.started("run-report")
        progress.finished("run-report", False)
    out.seek(0)
    text = out.read()
    lines = text.splitlines()
    assert 2 <= len(lines) <= 4 and all(len(line) <= PlainProgress.WIDTH + 2 for line in lines), lines
    assert lines[0].startswith("  done: load-data ")
    for name in steps:
        assert len(re.findall(rf"\b{name} \d+\.\ds", text)) == 1, name
    assert len(re.findall(r"poison-level x3 \d+\.\ds", text)) == 1, "a fan-out once, when its last item ends"
    assert re.fullmatch(r"  FAILED run-report \d+\.\ds", lines[-1])


def test_an_end_heard_without_its_start_counts_once_and_never_hangs(tmp_path: Path) -> None:
    out = (tmp_path / "out.txt").open("w+")
    progress = PlainProgress(out, {})
    ended = threading.Thread(target=progress.finished, args=("deploy-model", True), daemon=True)
    ended.start()
    ended.join(timeout=5)
    assert not ended.is_alive(), "finishing a task never seen starting took the progress lock twice"
    (task,) = progress.tasks.tasks.values()
    assert (task.started, task.finished) == (1, 1)


def test_live_progress_draws_state_time_and_a_bar(tmp_path: Path) -> None:
    from rich.console import Console

    progress = LiveProgress(open(os.devnull, "w"), {"poison-level": 4})  # noqa: SIM115
    progress.started("load-data")
    progress.finished("load-data", True)
    progress.started("train-model")
    for _ in range(4):
        progress.started("poison-level")
    progress.finished("poison-level", True)
    console = Console(record=True, width=100, force_terminal=False)
    console.print(progress)
    text = console.export_text()
    assert re.search(r"✓ load-data +done +\d+\.\ds", text), text
    assert re.search(r"train-model +running +\d+\.\ds", text), text
    assert re.search(r"poison-level +running +\d+\.\ds +━+ *1/4", text), text


# ---- slow: `make run` under a pseudo-terminal ------------------------------------------------------------------


@dataclass
class TerminalRun:
    """What a terminal showed while ``make run`` ran, and what it shows at the end."""

    returncode: int
    home: Path
    frames: list[str] = field(default_factory=list)
    final: list[str] = field(default_factory=list)

    @property
    def text(self) -> str:
        return "\n".join(self.final)


def run_in_terminal(command: list[str], env: dict[str, str], timeout: float) -> tuple[int, list[str], list[str]]:
    """Run ``command`` on a pseudo-terminal; return its exit status, snapshots of the screen taken while it ran
    (about one a second), and the final screen's lines (trailing blank lines dropped)."""
    import pyte

    screen = pyte.Screen(COLUMNS, ROWS)
    stream = pyte.ByteStream(screen)
    master, slave = os.openpty()
    fcntl.ioctl(slave, termios.TIOCSWINSZ, struct.pack("HHHH", ROWS, COLUMNS, 0, 0))
    process = subprocess.Popen(command, cwd=ROOT, env=env, stdin=slave, stdout=slave, stderr=slave, close_fds=True)
    os.close(slave)
    frames: list[str] = []
    deadline = time.monotonic() + timeout
    last_frame = 0.0
    try:
        while time.monotonic() < deadline:
            ready, _, _ = select.select([master], [], [], 0.5)
            if ready:
                try:
                    data = os.read(master, 65536)
                except OSError:  # the child closed the terminal
                    break
                if not data:
                    break
                stream.feed(data)
            if time.monotonic() - last_frame > 1.0:
                frames.append("\n".join(screen.display))
                last_frame = time.monotonic()
            if not ready and process.poll() is not None:
                break
        else:
            raise TimeoutError(f"{command} did not finish in {timeout} s")
        returncode = process.wait(timeout=60)
    finally:
        if process.poll() is None:
            process.kill()
            process.wait()
        os.close(master)
    lines = [line.rstrip() for line in screen.display]
    while lines and not lines[-1]:
        lines.pop()
    return returncode, frames, lines


@pytest.fixture(scope="module")
def terminal_run(tmp_path_factory: pytest.TempPathFactory) -> TerminalRun:
    """``make run`` with its defaults (the full built-in data set), on a terminal (not inheriting an outer make's
    variables, such as ``make test ARGS=...``)."""
    home = tmp_path_factory.mktemp("make-run")
    env = {**os.environ, "FRAUD_HOME": str(home), "TERM": "xterm-256color"}
    for name in ("MLFLOW_TRACKING_URI", "COLUMNS", "LINES", "CI", *OUTER_MAKE):
        env.pop(name, None)
    code, frames, final = run_in_terminal(["make", "--no-print-directory", "run"], env, timeout=1500)
    (home / "terminal.txt").write_text("\n".join(final) + "\n")  # the final screen, for a person to look at
    return TerminalRun(code, home, frames, final)


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test also waits for the module's `make run` on the full data set
def test_make_run_on_a_terminal_is_short_and_shows_progress(terminal_run: TerminalRun) -> None:
    assert terminal_run.returncode == 0, terminal_run.text[-3000:]
    assert len(terminal_run.final) <= MAX_LINES, terminal_run.text
    # progress while it ran: a live line per task with its state and time, the fan-out as a bar
    running = [f for f in terminal_run.frames if re.search(r"select-model +running +\d+\.\ds", f)]
    assert running, "no frame showed select-model running"
    levels = len(defaults()["poison_levels"])
    assert any(re.search(rf"poison-level +\w+ +\d+\.\ds +\S+ *\d/{levels}", f) for f in terminal_run.frames)
    assert any(re.search(r"✓ load-data +done", f) for f in terminal_run.frames)
    # the summary, and none of kfp.local's own output (that went to the log file)
    text = terminal_run.text
    assert re.search(r"^Model: \w+ \(test window\)", text, flags=re.M), "the winner's test metrics"
    for heading in ("Bake-off", "Poison sweep", "Fairness", "Drift", "Promotion: PROMOTED", "MLflow"):
        assert heading in text, heading
    assert re.search(r"^Steps \(wall time\)", text, flags=re.M), "a terminal's summary lists the step times"
    for noise in ("Executing task", "Streamed logs", "executor_output", "base image"):
        assert noise not in text, noise
    logged = (_report_page(terminal_run).parent / "run.log").read_text()
    assert "Executing task 'select-model'" in logged and "finished with status SUCCESS" in logged


def _report_page(run: TerminalRun) -> Path:
    match = re.search(r"report page +(\S+index\.html)", run.text)
    assert match, run.text
    return Path(match.group(1))


def _kfp_artifact_metadata(home: Path, task: str, output: str) -> dict:
    (executor_output,) = (home / "pipeline_root").glob(f"*/{task}/executor_output.json")
    return json.loads(executor_output.read_text())["artifacts"][output]["artifacts"][0]["metadata"]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test also waits for the module's `make run` on the full data set
def test_report_page_screenshot_shows_the_key_numbers(terminal_run: TerminalRun, tmp_path: Path) -> None:
    from tests.audits.chromium import ocr, render, screenshot

    assert terminal_run.returncode == 0
    page = _report_page(terminal_run)
    rendered = render(page)
    assert not rendered.errors and not rendered.external_refs
    assert rendered.data_images >= 2, "the poison and fairness plots are on the page"
    for name in ("poison.html", "fairness.html", "drift.html", "decision.md"):
        assert f'href="{name}"' in rendered.dom and (page.parent / name).is_file(), name
    metrics = _kfp_artifact_metadata(terminal_run.home, "select-model", "metrics")
    text = ocr(screenshot(page, tmp_path / "report.png"))
    for number in (metrics["test_auprc"], metrics["oracle_test_auprc"], metrics["baseline_lr_test_auprc"]):
        assert f"{number:.4f}" in text, (number, text[:1500])
    assert "PROMOTED" in text
    # the same numbers the terminal summary printed
    assert f"AUPRC       {metrics['test_auprc']:.4f}" in terminal_run.text


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test also waits for the module's `make run` on the full data set
def test_dataset_input_reads_back_with_the_kfp_artifacts_data_version(terminal_run: TerminalRun) -> None:
    import mlflow

    from fraud_detection.tracking import DATA_VERSION_TAG

    assert terminal_run.returncode == 0
    train_data = _kfp_artifact_metadata(terminal_run.home, "load-data", "train_data")
    version = train_data["data_version"]
    assert version.startswith("sha256:")
    uri = f"sqlite:///{terminal_run.home / 'mlflow' / 'mlflow.db'}"
    client = mlflow.MlflowClient(tracking_uri=uri, registry_uri=uri)
    experiment = client.get_experiment_by_name("fraud-detection")
    (run,) = client.search_runs([experiment.experiment_id], filter_string="tags.step = 'train'")
    (dataset_input,) = run.inputs.dataset_inputs
    dataset = dataset_input.dataset
    tags = {t.key: t.value for t in dataset_input.tags}
    assert tags[DATA_VERSION_TAG] == version
    assert dataset.digest == version.removeprefix("sha256:")[:32]
    assert tags["mlflow.data.context"] == "training"
    assert json.loads(dataset.profile) == {
        "num_rows": train_data["dataset_rows"],
        "num_frauds": train_data["dataset_frauds"],
    }
    assert train_data["dataset_rows"] == defaults()["synthetic_rows"]
    schema = [c["name"] for c in json.loads(dataset.schema)["mlflow_colspec"]]
    assert schema[:2] == ["Time", "V1"] and "Amount" in schema and "Class" in schema
    assert "synthetic(rows=" in dataset.source
    # the registered model version carries the same version: KFP artifact -> MLflow run -> model version
    (model_version,) = client.search_model_versions(f"run_id = '{run.info.run_id}'")
    assert model_version.tags["data_version"] == version


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test also waits for the module's `make run` on the full data set
def test_fraud_runs_lists_the_run_with_its_decision_and_auprc(terminal_run: TerminalRun) -> None:
    metrics = _kfp_artifact_metadata(terminal_run.home, "select-model", "metrics")
    env = {**os.environ, "FRAUD_HOME": str(terminal_run.home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "runs"], cwd=ROOT, env=env, capture_output=True, text=True, timeout=300
    )
    assert result.returncode == 0, result.stderr
    lines = result.stdout.splitlines()
    assert lines[0].split() == ["started", "run", "data", "AUPRC", "decision", "version"]
    assert re.search(rf" {metrics['test_auprc']:.4f} +PROMOTED +1$", lines[1]), lines
    assert "1 run(s) in experiment 'fraud-detection'" in lines[-1]


@pytest.mark.slow
@pytest.mark.timeout(1800)  # the first test also waits for the module's `make run` on the full data set
def test_fraud_ui_answers_on_localhost_and_stops_with_its_command(terminal_run: TerminalRun) -> None:
    from tests.conftest import free_port

    port = free_port()
    env = {**os.environ, "FRAUD_HOME": str(terminal_run.home)}
    env.pop("MLFLOW_TRACKING_URI", None)
    ui = subprocess.Popen(
        [sys.executable, "-m", "cli.main", "ui", "--port", str(port)],
        cwd=ROOT,
        env=env,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
    )
    try:
        assert ui.stdout is not None
        ready, _, _ = select.select([ui.stdout], [], [], 180)
        assert ready, "fraud ui printed nothing in 180 s"
        line = ui.stdout.readline()
        address = f"http://127.0.0.1:{port}"
        assert line.startswith(f"MLflow UI: {address}"), line
        with urllib.request.urlopen(address, timeout=10) as response:
            assert response.status == 200 and b"MLflow" in response.read()
        url = f"{address}/api/2.0/mlflow/experiments/get-by-name?experiment_name=fraud-detection"
        with urllib.request.urlopen(url, timeout=10) as response:
            assert json.loads(response.read())["experiment"]["name"] == "fraud-detection"
    finally:
        ui.send_signal(signal.SIGTERM)
        ui.wait(timeout=60)
    with pytest.raises(OSError):
        urllib.request.urlopen(address, timeout=5)
