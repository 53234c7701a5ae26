"""A small pipeline with one input of every KFP parameter type, one of them required (for submit tests).

No ``from __future__ import annotations`` here: KFP reads the real annotation objects."""

from pathlib import Path

from kfp import compiler, dsl


@dsl.component(base_image="python:3.11-slim")
def echo(name: str, count: int, ratio: float, flag: bool, tags: list, options: dict) -> str:
    """Return the inputs as text."""
    return f"{name} {count} {ratio} {flag} {tags} {options}"


@dsl.pipeline(name="tiny")
def tiny(
    name: str,
    count: int = 2,
    ratio: float = 0.5,
    flag: bool = False,
    tags: list = [],  # noqa: B006  (KFP reads the default; it is never mutated)
    options: dict = {},  # noqa: B006
) -> None:
    """One step that echoes its inputs."""
    echo(name=name, count=count, ratio=ratio, flag=flag, tags=tags, options=options)


def compile_tiny(path: Path) -> Path:
    """Compile the tiny pipeline to ``path``."""
    compiler.Compiler().compile(tiny, package_path=str(path))
    return path
