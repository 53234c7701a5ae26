"""Fixtures of the monitoring tests: the serving tests' real model directory."""

from tests.serving.conftest import model_dir

__all__ = ["model_dir"]
