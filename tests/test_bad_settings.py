"""A bad ``FRAUD_*`` variable or option ends the model server and the stream scorer, by either entry point, with
exit code 2 and one line per problem naming where the value came from: never a traceback."""

from __future__ import annotations

import os
import subprocess
import sys

import pytest

from tests.conftest import FRAUD
from tests.serving.conftest import REPO

ENTRY_POINTS = {
    "python -m streaming": [sys.executable, "-m", "streaming"],
    "python -m serving": [sys.executable, "-m", "serving"],
    "fraud stream": [*FRAUD, "stream"],
    "fraud serve": [*FRAUD, "serve"],
}


def refused(argv: list[str], **variables: str) -> list[str]:
    """The stderr lines of ``argv`` run with ``variables`` as its only ``FRAUD_*`` settings, once it exited with 2 and
    no traceback."""
    env = {k: v for k, v in os.environ.items() if not k.startswith("FRAUD_")} | variables
    done = subprocess.run(argv, cwd=REPO, env=env, capture_output=True, text=True, timeout=60)
    assert done.returncode == 2, done.stderr
    assert "Traceback" not in done.stderr
    return done.stderr.strip().splitlines()


@pytest.mark.parametrize("entry", list(ENTRY_POINTS))
def test_bad_settings_end_the_process_with_every_problem_named_and_no_traceback(entry: str) -> None:
    lines = refused(ENTRY_POINTS[entry], FRAUD_PORT="eighty", FRAUD_MAX_BATCH_ROWS="0")
    assert lines[0] == f"{entry}: error: invalid settings:"
    assert "  FRAUD_PORT must be a whole number, got 'eighty'" in lines
    assert "  FRAUD_MAX_BATCH_ROWS must be >= 1, got '0'" in lines


@pytest.mark.parametrize("entry", ["python -m streaming", "fraud stream"])
def test_an_option_is_named_as_the_option_and_a_contradiction_by_its_rule(entry: str) -> None:
    assert "  --batch-size must be >= 1, got 0" in refused([*ENTRY_POINTS[entry], "--batch-size", "0"])
    lines = refused(ENTRY_POINTS[entry], FRAUD_ROLE="applier", FRAUD_APPLY_TRANSACTIONS="false")
    assert lines[1:] == ["  role=applier applies transactions: apply_transactions=false contradicts it"], lines
