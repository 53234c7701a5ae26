"""``fraud --version`` prints the installed package's version and exits 0."""

from __future__ import annotations

import subprocess
import sys
import tomllib
from importlib import metadata
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]


def test_fraud_version_prints_the_distribution_version_and_exits_0() -> None:
    project = tomllib.loads((REPO / "pyproject.toml").read_text(encoding="utf-8"))["project"]
    result = subprocess.run(
        [sys.executable, "-m", "cli.main", "--version"], cwd=REPO, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    assert result.stdout.strip() == f"fraud {metadata.version(project['name'])}"
