"""A promotion in its own process, for the fault tests: ``python -m tests.reliability.driver CONFIG.json``.

The config names the candidate, the test window, the tracking URI, the model and the serving root, plus the
fault to meet: stop at a checkpoint and wait for the test (``wait_at``), kill itself with SIGKILL after the n-th
file an export copies (``kill_after_copies``), or run an unfixed code path (``unstaged_export``: the old export,
straight into ``v<N>``; ``no_retry``: one attempt per registry call). It prints one JSON line with the outcome.
"""

from __future__ import annotations

import json
import os
import shutil
import signal
import sys
import time
from pathlib import Path
from typing import Any

from fraud_detection import champion, modeldir, registry
from fraud_detection.config import GateKnobs
from fraud_detection.steps.promote import promote_step


def unstaged_export(source: Path, target: Path) -> None:
    """The export before this fix: files copied straight into the version folder, in name order."""
    target.mkdir(parents=True, exist_ok=True)
    for path in sorted(p for p in source.rglob("*") if p.is_file()):
        shutil.copyfile(path, target / path.relative_to(source))


def main(config: dict[str, Any]) -> int:
    if config.get("unstaged_export"):
        modeldir._export_local = unstaged_export  # type: ignore[assignment]
    kill_after = config.get("kill_after_copies")
    if kill_after:
        copy = shutil.copyfile
        copied = []

        def copy_then_die(src: Any, dst: Any, **kwargs: Any) -> Any:
            result = copy(src, dst, **kwargs)
            if str(config["serving_root"]) in str(dst):
                copied.append(dst)
                if len(copied) >= kill_after:
                    os.kill(os.getpid(), signal.SIGKILL)
            return result

        shutil.copyfile = copy_then_die  # type: ignore[assignment]
    wait_at = config.get("wait_at")
    if wait_at:

        def pause(point: str) -> None:
            if point == wait_at:
                Path(config["marker"]).write_text(point)
                while not Path(config["go"]).exists():
                    time.sleep(0.05)

        champion.pause = pause
    retry = registry.RetryPolicy(attempts=1) if config.get("no_retry") else registry.DEFAULT_RETRY
    try:
        result = promote_step(
            Path(config["candidate"]),
            Path(config["test"]),
            0.05,
            1.0,
            GateKnobs(),
            config["tracking_uri"],
            config["model"],
            config["serving_root"],
            retry=retry,
        )
    except Exception as error:
        print(json.dumps({"error": f"{type(error).__name__}: {error}"}), flush=True)
        return 1
    print(json.dumps({"promoted": result.decision.promoted, "version": result.decision.candidate_version}), flush=True)
    return 0


def state(root: str) -> None:
    """What a reader finds under a local serving root: its entries, the pointer's version and the link."""
    entries = sorted(p.name for p in Path(root).iterdir())
    pointer = champion.read(root).champion
    link = os.readlink(Path(root) / champion.LINK)
    print(json.dumps({"listing": entries, "pointer": pointer.version if pointer else None, "link": link}))


if __name__ == "__main__":
    if sys.argv[1] == "--state":
        state(sys.argv[2])
        sys.exit(0)
    sys.exit(main(json.loads(Path(sys.argv[1]).read_text())))
