"""Every `fraud submit` / `fraud logs` command in docs/gke.md parses with the real CLI parsers."""

from __future__ import annotations

import argparse
import re
import shlex

import pytest

from cli import cluster as cli_cluster
from ops import submit

from .checks import REPO

DOC = REPO / "docs" / "gke.md"


def _commands() -> list[str]:
    text = DOC.read_text()
    blocks = re.findall(r"```bash[^\n]*\n(.*?)```", text, re.DOTALL)  # the word after bash is its mark
    joined = "\n".join(blocks).replace("\\\n", " ")
    found = []
    for line in joined.splitlines():
        found += re.findall(r"(?:\.venv/bin/)?fraud (?:submit|logs) (?:\$\([^)]*\)|[^)`\n])*", line)
    return found


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="fraud", exit_on_error=False)
    sub = parser.add_subparsers(dest="command", required=True)
    cli_cluster.add_submit_parser(sub)
    cli_cluster.add_logs_parser(sub)
    return parser


def test_the_doc_shows_both_commands() -> None:
    commands = _commands()
    assert any(" submit vertex " in c for c in commands)
    assert any(" submit kfp " in c for c in commands)
    assert sum(" logs " in c for c in commands) >= 3


@pytest.mark.parametrize("command", _commands())
def test_doc_command_parses(command: str) -> None:
    # shell expansions stand for values: replace them by a placeholder word
    # (a variable inside quotes keeps its closing quote: "gs://$BUCKET/x" becomes "gs://VALUE")
    command = re.sub(r'"\$\([^)]*\)"|\$\([^)]*\)|"\$\{?\w+\}?[^"\s]*"|\$\{?\w+\}?[^"\s]*', "VALUE", command)
    argv = shlex.split(command.split("&")[0], comments=True)[1:]  # drop the program name
    args = _parser().parse_args(argv)
    assert args.handler in {cli_cluster.submit_command, cli_cluster.logs_command}
    if args.command == "submit":  # the parameters it shows exist in the compiled pipeline
        declared = submit.read_pipeline(REPO / "pipelines" / "fraud_pipeline.yaml").parameters
        assert set(submit.parse_param_pairs(args.param)) <= set(declared)


def test_a_wrong_flag_is_caught(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parser().parse_args(["logs", "flagged", "--projekt", "p"])
    assert "--projekt" in capsys.readouterr().err
