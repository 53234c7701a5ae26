"""A failed step is read back from its record, never from the log: one failure raised on purpose (bad data) and one
by surprise (a library error the code does not expect), each through a real ``fraud run``; and the failure summary
built from the records shows the step, its reason once and the step's own lines, never KFP's executor dump."""

from __future__ import annotations

import os
import subprocess
from pathlib import Path

import pytest

from components.outcome import StepOutcome, read_outcomes
from tests.conftest import run_fraud

NEGATIVE_AMOUNT = "column 'Amount' has 1 negative value(s) (first at row 42: -12.5)"


def fraud_run(home: Path, *args: str, **env: str) -> subprocess.CompletedProcess[str]:
    environment = {**os.environ, "FRAUD_HOME": str(home), "COLUMNS": "1000", **env}
    for name in ("MLFLOW_TRACKING_URI", "STORAGE_EMULATOR_HOST"):
        environment.pop(name, None)
    return run_fraud("run", *args, env=environment, timeout=600)


@pytest.fixture(scope="module")
def bad_csv(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """5,000 rows of the built-in data with a negative Amount on row 42."""
    from fraud_detection import synth

    frame = synth.generate(synth.SyntheticConfig(n_rows=5000))
    frame.loc[41, "Amount"] = -12.5
    path = tmp_path_factory.mktemp("data") / "bad.csv"
    frame.to_csv(path, index=False)
    return path


def only_failure(home: Path) -> StepOutcome:
    outcomes = read_outcomes(home / "pipeline_root")
    failed = [outcome for outcome in outcomes if not outcome.ok]
    assert len(failed) == 1, outcomes
    return failed[0]


def test_bad_data_fails_the_load_step_on_purpose(tmp_path: Path, bad_csv: Path) -> None:
    result = fraud_run(tmp_path, "--data-uri", str(bad_csv))
    assert result.returncode == 1
    outcome = only_failure(tmp_path)
    assert outcome.step == "load" and outcome.failure is not None
    assert outcome.failure.reason == NEGATIVE_AMOUNT
    assert outcome.failure.deliberate is True
    assert outcome.failure.error_type == "DataValidationError"


def test_an_unexpected_error_fails_the_load_step_by_surprise(tmp_path: Path) -> None:
    """Data on a bucket with a credentials file that does not exist: google-auth's own error, which the project
    never raises on purpose."""
    missing_key = tmp_path / "no-such-key.json"
    result = fraud_run(
        tmp_path, "--data-uri", "gs://no-bucket/creditcard.csv", GOOGLE_APPLICATION_CREDENTIALS=str(missing_key)
    )
    assert result.returncode == 1
    outcome = only_failure(tmp_path)
    assert outcome.step == "load" and outcome.failure is not None
    assert outcome.failure.deliberate is False
    assert outcome.failure.error_type == "DefaultCredentialsError"
    assert str(missing_key) in outcome.failure.reason
    assert outcome.failure.where.startswith("storage.py:"), "the innermost frame of the project's own code"


def executor_input_lines(text: str) -> list[str]:
    """Lines that come from KFP's executor input or output dumps."""
    markers = ("schemaTitle", "executor_input", "executorInput", "outputFile", '"artifacts"', '"parameterValues"')
    return [
        line
        for line in text.splitlines()
        if any(m in line for m in markers) or line.strip().lstrip("|").strip().startswith(("{", '"', "}"))
    ]


@pytest.mark.parametrize("engine", ["local", "dask"])
def test_the_failure_summary_shows_the_reason_once_and_no_executor_dump(
    tmp_path: Path, bad_csv: Path, engine: str
) -> None:
    result = fraud_run(tmp_path, "--data-uri", str(bad_csv), "--engine", engine, "--dask-workers", "1")
    assert result.returncode == 1
    summary = result.stderr
    assert summary.count(NEGATIVE_AMOUNT) == 1, summary
    assert f"\n  load: {NEGATIVE_AMOUNT}\n" in summary
    assert "fraud-step-error" not in summary
    assert executor_input_lines(summary) == [], summary
    assert not [line for line in summary.splitlines() if "distributed." in line and "INFO" in line], summary
    assert summary.strip().endswith("Nothing was registered or exported.")
    if engine == "local":
        # README's shape, line for line
        lines = summary.strip().splitlines()
        assert len(lines) == 3 and lines[0].startswith("Pipeline FAILED after "), summary
    else:
        # the step's own lines: the project's log records, not the Dask scheduler's
        assert "Last log lines of load:" in summary
        assert "fraud_detection.engines.dask_load" in summary
