"""Helpers every pipeline step calls at start and on failure, so all steps log alike."""

from __future__ import annotations

import logging
import sys

ERROR_MARKER = "fraud-step-error:"
"""Prefix of the one line a failing step prints with its reason; ``fraud run`` shows it in the summary."""


def setup_logging(level: str = "INFO") -> None:
    """Plain, timestamped log lines on stderr for a step process."""
    logging.basicConfig(
        level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stderr, force=True
    )


def fail(step: str, error: BaseException) -> SystemExit:
    """Print the step's failure reason on one marked line and return the exit to raise."""
    print(f"{ERROR_MARKER} {step}: {error}", file=sys.stderr, flush=True)
    return SystemExit(1)
