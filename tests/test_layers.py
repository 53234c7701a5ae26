"""The import contracts between layers (pyproject.toml, ``[tool.importlinter]``) hold, and they can fail."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
PACKAGES = ("cli", "pipelines", "components", "ops", "serving", "streaming", "monitor", "fraud_detection")
LINT_IMPORTS = Path(sys.executable).with_name("lint-imports")


def lint_imports(tree: Path) -> subprocess.CompletedProcess[str]:
    """``lint-imports`` with the project's own contracts, over the packages found in ``tree``."""
    env = {**os.environ, "PYTHONPATH": str(tree)}
    return subprocess.run(
        [str(LINT_IMPORTS), "--no-cache", "--config", str(ROOT / "pyproject.toml")],
        cwd=tree,
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


def copy_of_the_project(tmp_path: Path) -> Path:
    tree = tmp_path / "tree"
    for package in PACKAGES:
        shutil.copytree(ROOT / package, tree / package, ignore=shutil.ignore_patterns("__pycache__", "*.yaml"))
    return tree


def test_the_project_keeps_every_contract() -> None:
    result = lint_imports(ROOT)
    assert result.returncode == 0, result.stdout + result.stderr
    assert "0 broken" in result.stdout


@pytest.mark.parametrize(
    "module, line, contract",
    [
        ("fraud_detection/schema.py", "import pipelines.pipeline", "Layers"),
        ("fraud_detection/data.py", "import kfp", "The library is a leaf"),
        ("ops/submit.py", "from cli import main", "Layers"),
        ("serving/payload.py", "from fraud_detection import boosting", "Serving uses the library's schema"),
        ("components/runner.py", "import serving.predictor", "Components do not reach into the serving app"),
        ("streaming/consumer.py", "import serving.app", "Streaming uses serving's scoring core"),
        ("streaming/messages.py", "from fraud_detection import synth", "Streaming uses serving's scoring core"),
        ("streaming/produce.py", "import kserve", "Streaming uses serving's scoring core"),
        ("serving/scoring.py", "import streaming.consumer", "Serving uses the library's schema"),
        ("fraud_detection/modeldir.py", "import confluent_kafka", "The library is a leaf"),
        ("monitor/controller.py", "import pipelines.pipeline", "Monitor uses the library only"),
        ("fraud_detection/monitoring/join.py", "import monitor.metrics", "The library is a leaf"),
        ("serving/scoring.py", "import monitor.actions", "Nothing below the top imports monitor"),
    ],
)
def test_a_forbidden_import_breaks_the_lint(tmp_path: Path, module: str, line: str, contract: str) -> None:
    tree = copy_of_the_project(tmp_path)
    assert lint_imports(tree).returncode == 0, "the copy must be clean before the forbidden import is added"
    target = tree / module
    target.write_text(target.read_text() + f"\n{line}  # added by the test\n")
    result = lint_imports(tree)
    assert result.returncode != 0
    broken = [row for row in result.stdout.splitlines() if " BROKEN" in row]  # "BROKEN (1 ignored import)" too
    assert any(row.startswith(contract) for row in broken), result.stdout


LIBRARY_MAX_LINES = 450
"""The longest a module of the library (``fraud_detection``) may grow before it is split."""


def test_no_library_module_is_longer_than_the_bound() -> None:
    lengths = {path: len(path.read_text().splitlines()) for path in (ROOT / "fraud_detection").rglob("*.py")}
    assert lengths, "no library modules found"
    too_long = {str(path.relative_to(ROOT)): n for path, n in lengths.items() if n > LIBRARY_MAX_LINES}
    assert not too_long, f"split these modules (over {LIBRARY_MAX_LINES} lines): {too_long}"
