"""The shell commands the README and docs/*.md show: every block is marked, and the ones marked to run work.

The runs share one fresh FRAUD_HOME (a temp folder): the ``setup`` block (a small run that makes a champion)
runs once, then each document's ``quick`` and ``server`` blocks in document order (a block an earlier document
showed word for word is not run twice). CI runs them (``make test``);
``make test-fast`` leaves them out, with the other tests that run a pipeline or a server.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.doc_commands import DOCS, MARKS, REPO, CommandFailed, run_blocks, shell_blocks, split_commands


@pytest.fixture(scope="module")
def passed() -> set[str]:
    """The doc commands that passed in ``home_with_a_champion``: a block shown in two documents runs once."""
    return set()


@pytest.fixture(scope="module")
def home_with_a_champion(tmp_path_factory: pytest.TempPathFactory, passed: set[str]) -> Iterator[Path]:
    """A fresh FRAUD_HOME after every ``setup`` block of the docs has run in it."""
    home = tmp_path_factory.mktemp("fraud-home")
    for doc in DOCS:
        run_blocks(doc, home, marks=("setup",), passed=passed)
    yield home


def test_every_shell_block_in_the_docs_carries_one_known_mark() -> None:
    blocks = [block for doc in DOCS for block in shell_blocks(doc)]
    unmarked = [f"{block.where}: ```{block.info}" for block in blocks if block.mark not in MARKS]
    assert not unmarked, (
        "mark each block with one of " + ", ".join(MARKS) + " (README.md, Development):\n" + "\n".join(unmarked)
    )
    assert {block.mark for block in blocks} >= {"setup", "quick", "server"}
    readme = (REPO / "README.md").read_text(encoding="utf-8")
    assert all(f"`{mark}`" in readme for mark in MARKS), "README.md's Development section explains every mark"


def test_an_unmarked_block_is_caught(tmp_path: Path) -> None:
    doc = tmp_path / "new.md"
    doc.write_text("# New\n\n```bash\n.venv/bin/fraud --version\n```\n\n```sh quick\nls\n```\n", encoding="utf-8")
    assert [(block.line, block.mark) for block in shell_blocks(doc)] == [(3, ""), (7, "quick")]


def test_a_block_is_split_into_commands_without_comments() -> None:
    body = [
        "# a comment line",
        ".venv/bin/fraud run --n-rounds 60 \\",
        "  --families xgboost     # trailing comment",
        "",
        "curl -s 127.0.0.1:9100/metrics | grep '#'  # the quoted # stays",
    ]
    assert split_commands(body) == (
        ".venv/bin/fraud run --n-rounds 60 --families xgboost",
        "curl -s 127.0.0.1:9100/metrics | grep '#'",
    )


def test_a_readme_command_that_stops_working_fails_the_check(tmp_path: Path) -> None:
    readme = REPO / "README.md"
    first = next(block for block in shell_blocks(readme) if block.mark == "quick").commands[0]
    assert ".venv/bin/fraud " in first
    copy = tmp_path / "README.md"
    shutil.copy(readme, copy)
    (tmp_path / "home").mkdir()
    assert run_blocks(copy, tmp_path / "home", marks=("quick",)) >= 1  # the copy passes as it is
    broken = first.replace(".venv/bin/fraud ", ".venv/bin/fraud no-such-command ", 1)
    copy.write_text(readme.read_text(encoding="utf-8").replace(first, broken, 1), encoding="utf-8")
    with pytest.raises(CommandFailed) as failed:
        run_blocks(copy, tmp_path / "home", marks=("quick",))
    assert broken in str(failed.value) and "invalid choice: 'no-such-command'" in str(failed.value)


@pytest.mark.slow
@pytest.mark.parametrize(
    "doc",
    [doc for doc in DOCS if any(b.mark in ("quick", "server") for b in shell_blocks(doc))],
    ids=lambda doc: doc.name,
)
def test_the_quick_and_server_commands_of_a_doc_work(doc: Path, home_with_a_champion: Path, passed: set[str]) -> None:
    run_blocks(doc, home_with_a_champion, passed=passed)
