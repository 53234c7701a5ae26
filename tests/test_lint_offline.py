"""`make lint` downloads nothing: after `make install`, checkov runs from its own venv under .venv, like every tool.

The project's own Makefile runs in a copy of the repo's build files whose install stamps are fresh (the state
`make install` leaves), under `make -n`, which prints each command instead of running it.
"""

from __future__ import annotations

import re
import shutil
import subprocess
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
BUILD_FILES = ("Makefile", "pyproject.toml", "requirements.lock", "requirements-checkov.lock")
DOWNLOADS = re.compile(r"\buv tool run\b|\buvx\b|\bpip install\b|\bpip download\b|\bcurl\b|\bwget\b")


def _copy_build_files(folder: Path) -> None:
    for name in BUILD_FILES:
        shutil.copy2(REPO / name, folder / name)


def _make_dry_run(folder: Path, target: str) -> str:
    result = subprocess.run(
        ["make", "--no-print-directory", "-n", target], cwd=folder, capture_output=True, text=True, timeout=60
    )
    assert result.returncode == 0, result.stderr
    return result.stdout


def _makefile_variable(name: str) -> str:
    found = re.search(rf"^{name}\s*:=\s*(\S+)", (REPO / "Makefile").read_text(encoding="utf-8"), re.MULTILINE)
    assert found, f"the Makefile sets no {name}"
    return found.group(1)


def test_lint_after_install_runs_checkov_from_the_venv_and_downloads_nothing(tmp_path: Path) -> None:
    _copy_build_files(tmp_path)
    for stamp in (tmp_path / ".venv" / ".installed", tmp_path / ".venv" / "checkov" / ".installed"):
        stamp.parent.mkdir(parents=True, exist_ok=True)
        stamp.touch()  # newer than the build files: what `make install` leaves behind
    commands = _make_dry_run(tmp_path, "lint")
    assert not DOWNLOADS.findall(commands), commands
    checkov_calls = [line for line in commands.splitlines() if re.search(r"\bcheckov\b.*--framework", line)]
    assert checkov_calls, commands
    assert all(line.lstrip().startswith(".venv/checkov/bin/checkov ") for line in checkov_calls), checkov_calls


def test_install_puts_the_pinned_checkov_from_its_own_lock_in_the_venv(tmp_path: Path) -> None:
    _copy_build_files(tmp_path)
    commands = _make_dry_run(tmp_path, "install")
    assert "--python .venv/checkov/bin/python" in commands and "-r requirements-checkov.lock" in commands, commands
    pins = (REPO / "requirements-checkov.lock").read_text(encoding="utf-8").splitlines()
    assert f"checkov=={_makefile_variable('CHECKOV_VERSION')}" in pins
