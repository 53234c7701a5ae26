"""The shell blocks of README.md and docs/*.md, read by their mark, and the runner of the ones marked to run.

A block's mark is the word after its language (```` ```bash quick ````); GitHub shows the block as plain bash.
README.md's Development section says what each mark means; ``MARKS`` is the same list for the check.
"""

from __future__ import annotations

import os
import re
import socket
import subprocess
import sys
import time
import urllib.error
import urllib.request
from dataclasses import dataclass
from pathlib import Path

REPO = Path(__file__).resolve().parents[1]
DOCS = (REPO / "README.md", *sorted((REPO / "docs").glob("*.md")))
SHELLS = frozenset({"bash", "sh", "shell", "console"})
MARKS = {
    "quick": "seconds, nothing but the venv: the check runs each command and wants exit 0",
    "setup": "makes the state later blocks need (a champion): the check runs it once, first",
    "server": "its first command starts a server on the URL in its comment; the check starts it, waits until it "
    "answers, runs the other commands against it (each until it succeeds, within a minute), then stops it",
    "slow": "minutes (a default-size run, a benchmark, a test suite, image builds): never run by the check",
    "cluster": "needs gcloud, kubectl or helm against a cluster: never run by the check",
    "manual": "needs what you provide or start by hand (your data, a bucket, a built image, a broker): never run",
}
RUN_MARKS = ("setup", "quick", "server")
COMMAND_TIMEOUT = 300.0
SERVER_WAIT = 60.0
FENCE = re.compile(r"^(?P<fence>```+)(?P<info>.*)$")
LOCAL_URL = re.compile(r"http://127\.0\.0\.1:(?P<port>\d+)")


@dataclass(frozen=True)
class Block:
    """One fenced shell block: where it starts, its mark ("" if it has none) and its commands."""

    path: Path
    line: int
    info: str
    commands: tuple[str, ...]

    @property
    def mark(self) -> str:
        """The word after the language: one of ``MARKS``, or what a reviewer must fix."""
        words = self.info.split()
        return " ".join(words[1:])

    @property
    def where(self) -> str:
        """``file:line`` of the opening fence, relative to the repository."""
        name = self.path.relative_to(REPO) if self.path.is_relative_to(REPO) else self.path.name
        return f"{name}:{self.line}"


class CommandFailed(AssertionError):
    """A doc command exited non-zero or timed out; the message shows the command and its output."""


def without_comment(line: str) -> str:
    """The line without its ``# ...`` comment (a ``#`` starting a word outside quotes), trailing space removed."""
    quote = ""
    for index, char in enumerate(line):
        if quote:
            quote = "" if char == quote else quote
        elif char in "'\"":
            quote = char
        elif char == "#" and (index == 0 or line[index - 1].isspace()):
            return line[:index].rstrip()
    return line.rstrip()


def split_commands(body: list[str]) -> tuple[str, ...]:
    """One command per logical line: continuations (``\\``) joined, comments and blank lines left out."""
    commands: list[str] = []
    pending = ""
    for raw in body:
        line = without_comment(raw)
        if line.endswith("\\"):
            pending += line[:-1].rstrip() + " "
            continue
        command = (pending + line.strip()).strip()
        pending = ""
        if command:
            commands.append(command)
    return tuple(commands)


def shell_blocks(path: Path) -> list[Block]:
    """Every fenced block of ``path`` whose language is a shell, in document order."""
    lines = path.read_text(encoding="utf-8").splitlines()
    blocks: list[Block] = []
    index = 0
    while index < len(lines):
        opening = FENCE.match(lines[index])
        if not opening:
            index += 1
            continue
        end = index + 1
        while end < len(lines) and not lines[end].startswith(opening["fence"]):
            end += 1
        info = opening["info"].strip()
        if info.split()[:1] and info.split()[0] in SHELLS:
            blocks.append(Block(path, index + 1, info, split_commands(lines[index + 1 : end])))
        index = end + 1
    return blocks


OUTER_MAKE = ("MAKEFLAGS", "MFLAGS", "MAKELEVEL", "ARGS", "DATA")
"""What an outer ``make test ARGS=...`` hands its commands: its flags, and the Makefile's own variables set on its
command line (make exports those). A doc's ``make run`` must not inherit them: the reader's would not."""


def command_env(home: Path) -> dict[str, str]:
    """This environment with ``FRAUD_HOME`` set to ``home``, the running venv's bin folder first on PATH, and no
    outer make's variables (:data:`OUTER_MAKE`)."""
    env = {name: value for name, value in os.environ.items() if name not in OUTER_MAKE}
    env["FRAUD_HOME"] = str(home)
    env["PATH"] = f"{Path(sys.executable).parent}{os.pathsep}{env.get('PATH', '')}"
    return env


def run_command(command: str, home: Path, where: str, timeout: float = COMMAND_TIMEOUT) -> None:
    """Run ``command`` with bash in the repository; raise ``CommandFailed`` with its output unless it exits 0."""
    try:
        result = subprocess.run(
            ["bash", "-o", "pipefail", "-c", command],
            cwd=REPO,
            env=command_env(home),
            stdin=subprocess.DEVNULL,
            capture_output=True,
            text=True,
            timeout=timeout,
        )
    except subprocess.TimeoutExpired as expired:
        raise CommandFailed(f"{where}: timed out after {timeout:.0f} s: {command}\n{_tail(expired.output)}") from None
    if result.returncode != 0:
        output = _tail(result.stdout + result.stderr)
        raise CommandFailed(f"{where}: exit {result.returncode}: {command}\n{output}")


def _tail(output: str | bytes | None, lines: int = 60) -> str:
    text = output.decode("utf-8", "replace") if isinstance(output, bytes) else output or ""
    return "\n".join(f"  | {line}" for line in text.splitlines()[-lines:])


def _answers(url: str) -> bool:
    try:
        with urllib.request.urlopen(url, timeout=2):
            return True
    except urllib.error.HTTPError:
        return True  # any HTTP status: something listens and speaks HTTP
    except (urllib.error.URLError, OSError):
        return False


def _port_is_free(port: int) -> bool:
    with socket.socket() as sock:
        return sock.connect_ex(("127.0.0.1", port)) != 0


def run_server_block(block: Block, home: Path) -> None:
    """Start the block's server, wait until its URL answers, run each other command until it succeeds, stop it."""
    server, *clients = block.commands
    found = LOCAL_URL.search(_comment_of(block, server))
    if not found:
        raise CommandFailed(f"{block.where}: a server block's first command names its http://127.0.0.1:PORT URL")
    url = found.group(0)
    if not _port_is_free(int(found["port"])):
        raise CommandFailed(f"{block.where}: port {found['port']} is taken before `{server}` starts")
    log = home / f"server-{block.path.stem}-{block.line}.log"
    with log.open("w") as out:
        process = subprocess.Popen(
            ["bash", "-c", server],
            cwd=REPO,
            env=command_env(home),
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )
    try:
        deadline = time.monotonic() + SERVER_WAIT
        while not _answers(url):
            if process.poll() is not None or time.monotonic() > deadline:
                state = f"exited {process.returncode}" if process.poll() is not None else "no answer in time"
                raise CommandFailed(f"{block.where}: {server}: {state} on {url}\n{_tail(log.read_text())}")
            time.sleep(0.5)
        for client in clients:
            _until_it_succeeds(client, home, block.where)
    finally:
        _stop(process)


def _until_it_succeeds(command: str, home: Path, where: str) -> None:
    """A user in another shell tries again while the server loads its model; the last failure is the report."""
    deadline = time.monotonic() + SERVER_WAIT
    while True:
        try:
            run_command(command, home, where)
            return
        except CommandFailed:
            if time.monotonic() > deadline:
                raise
            time.sleep(2)


def _stop(process: subprocess.Popen[bytes]) -> None:
    if process.poll() is not None:
        return
    os.killpg(process.pid, 15)
    try:
        process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        os.killpg(process.pid, 9)
        process.wait(timeout=10)


def _comment_of(block: Block, command: str) -> str:
    """The source line of ``command`` in its block, comment included (where a server names its URL)."""
    lines = block.path.read_text(encoding="utf-8").splitlines()[block.line :]
    return next((line for line in lines if line.startswith(command)), command)


def run_blocks(
    path: Path, home: Path, marks: tuple[str, ...] = ("quick", "server"), passed: set[str] | None = None
) -> int:
    """Run the commands of ``path``'s blocks carrying one of ``marks``, in document order; return how many ran.

    A block whose every command is in ``passed`` (run already in this FRAUD_HOME, say by another document) is
    not run again; the commands of each block that passes are added to it.
    """
    passed = set() if passed is None else passed
    ran = 0
    for block in shell_blocks(path):
        if block.mark not in marks or set(block.commands) <= passed:
            continue
        if block.mark == "server":
            run_server_block(block, home)
        else:
            for command in block.commands:
                run_command(command, home, block.where)
        passed.update(block.commands)
        ran += len(block.commands)
    return ran
