"""Real parts of the loop-after-deploy tests: a local serving root with exported versions, and the controller
process on 127.0.0.1 with a retrain command that only writes down that it ran."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests

from fraud_detection import champion, modeldir
from tests.conftest import free_port, stop_process

WAIT = 30.0
TOKEN = "s3cret-token-for-alertmanager"
RECORD_RUN = "import os, sys; open(sys.argv[1], 'a').write(os.environ['FRAUD_RETRAIN_GROUP'] + '\\n')"
"""The retraining "run" of the tests: one line per start, naming its alert group."""


def serving_root(directory: Path, model_dir: Path, versions: int = 3) -> Path:
    """``v1``…``v<versions>`` exported under ``directory`` and the champion pointer on the newest."""
    for version in range(1, versions + 1):
        modeldir.publish(model_dir, str(directory), str(version))
    observed = champion.read(str(directory))
    newest = str(versions)
    champion.compare_and_set(str(directory), observed, champion.Champion(newest, str(directory / f"v{newest}")))
    return directory


def notification(alertname: str, group_key: str, status: str = "firing", **labels: str) -> dict[str, Any]:
    """An Alertmanager webhook body (version 4) with one alert."""
    alert = {
        "status": status,
        "labels": {"alertname": alertname, **labels},
        "annotations": {},
        "startsAt": "2026-01-01T00:00:00Z",
        "endsAt": "0001-01-01T00:00:00Z",
        "generatorURL": "http://prometheus/graph",
        "fingerprint": "f" * 16,
    }
    return {
        "version": "4",
        "groupKey": group_key,
        "truncatedAlerts": 0,
        "status": status,
        "receiver": "controller",
        "groupLabels": {"alertname": alertname},
        "commonLabels": alert["labels"],
        "commonAnnotations": {},
        "externalURL": "http://alertmanager",
        "alerts": [alert],
    }


class Controller:
    """``python -m monitor.controller`` on 127.0.0.1:<free port>; runs are lines of ``runs_file``."""

    def __init__(self, work: Path, root: Path, lease_hours: float = 6) -> None:
        work.mkdir(parents=True, exist_ok=True)
        self.token_file = work / "token"
        self.token_file.write_text(TOKEN + "\n")
        self.runs_file = work / "runs.txt"
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log_path = work / "controller.log"
        self._log = self.log_path.open("w")
        command = shlex.join([sys.executable, "-c", RECORD_RUN, str(self.runs_file)])
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monitor.controller", "--token-file", str(self.token_file),
             "--serving-root", str(root), "--state", str(work / "state" / "controller.sqlite"),
             "--retrain-command", command, "--lease-hours", str(lease_hours),
             "--host", "127.0.0.1", "--port", str(self.port)],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        deadline = time.monotonic() + WAIT
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"controller exited: {self.log_path.read_text()[-2000:]}")
            try:
                if requests.get(f"{self.url}/healthz", timeout=2).status_code == 200:
                    break
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError("the controller did not answer within 30 s")
            time.sleep(0.1)

    def post(self, body: dict[str, Any], token: str | None = TOKEN, scheme: str = "Bearer") -> requests.Response:
        headers = {"Authorization": f"{scheme} {token}"} if token is not None else {}
        return requests.post(f"{self.url}/alerts", json=body, headers=headers, timeout=30)

    def runs(self) -> list[str]:
        """The alert groups of the runs started so far."""
        return self.runs_file.read_text().splitlines() if self.runs_file.exists() else []

    def wait_runs(self, count: int, timeout: float = WAIT) -> list[str]:
        deadline = time.monotonic() + timeout
        while len(self.runs()) < count and time.monotonic() < deadline:
            time.sleep(0.1)
        return self.runs()

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        self._log.close()
