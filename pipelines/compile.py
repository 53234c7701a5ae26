"""Compile the pipeline to YAML (the committed file must equal a fresh compile; a test checks it)."""

from __future__ import annotations

import tempfile
from pathlib import Path

from kfp import compiler

from components import COMPONENTS_IMAGE
from pipelines.pipeline import fraud_pipeline

COMPILED_PATH = Path(__file__).with_name("fraud_pipeline.yaml")


def compile_pipeline(output: Path = COMPILED_PATH, components_image: str = "") -> Path:
    """Compile to ``output``; with ``components_image``, every task runs that image instead of the placeholder."""
    with tempfile.TemporaryDirectory() as tmp:
        staged = Path(tmp) / "pipeline.yaml"
        compiler.Compiler().compile(fraud_pipeline, package_path=str(staged))
        text = staged.read_text()
    if components_image:
        if text.count(f"image: {COMPONENTS_IMAGE}") == 0:
            raise RuntimeError(f"placeholder image {COMPONENTS_IMAGE} not found in the compiled pipeline")
        text = text.replace(f"image: {COMPONENTS_IMAGE}", f"image: {components_image}")
    output.parent.mkdir(parents=True, exist_ok=True)
    output.write_text(text)
    return output
