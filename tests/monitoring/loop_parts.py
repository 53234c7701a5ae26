"""Real parts of the loop-after-deploy tests, each on 127.0.0.1: a local serving root with exported versions, the
controller process with a retrain command that only writes down that it ran, the joiner process, and
Debian's Alertmanager."""

from __future__ import annotations

import shlex
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import requests
import yaml
from prometheus_client.parser import text_string_to_metric_families

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

    def __init__(self, work: Path, root: Path, *options: str, lease_hours: float = 6) -> None:
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
             "--host", "127.0.0.1", "--port", str(self.port), *options],
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


class JoinerProcess:
    """``python -m monitor.joiner run`` with its metrics on 127.0.0.1:<free port>."""

    def __init__(self, work: Path, db: Path, *options: str) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/metrics"
        self.log_path = work / "joiner.log"
        self._log = self.log_path.open("w")
        self.process = subprocess.Popen(
            [sys.executable, "-m", "monitor.joiner", "run", "--db", str(db), "--metrics-host", "127.0.0.1",
             "--metrics-port", str(self.port), "--maturity-hours", "720", "--cohort-days", "90",
             "--refresh-seconds", "1", *options],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip

    def samples(self) -> dict[tuple[str, tuple[tuple[str, str], ...]], float]:
        """Every sample of ``/metrics`` by name and sorted labels ({} while it does not answer)."""
        if self.process.poll() is not None:
            raise AssertionError(f"the joiner exited: {self.log_path.read_text()[-2000:]}")
        try:
            text = requests.get(self.url, timeout=5).text
        except requests.RequestException:
            return {}
        return {
            (s.name, tuple(sorted(s.labels.items()))): s.value
            for family in text_string_to_metric_families(text)
            for s in family.samples
        }

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        self._log.close()


class Alertmanager:
    """``prometheus-alertmanager`` with ``config``, clustering off, a temporary storage directory."""

    def __init__(self, directory: Path, config: dict[str, Any]) -> None:
        (directory / "alertmanager.yml").write_text(yaml.safe_dump(config))
        port = free_port()
        self.url = f"http://127.0.0.1:{port}"
        self._log = (directory / "alertmanager.log").open("w")
        self.process = subprocess.Popen(
            ["prometheus-alertmanager", f"--config.file={directory / 'alertmanager.yml'}",
             f"--storage.path={directory / 'alertmanager'}", f"--web.listen-address=127.0.0.1:{port}",
             "--cluster.listen-address="],
            stdout=self._log,
            stderr=subprocess.STDOUT,
        )  # fmt: skip
        try:
            wait_until(self._ready, "alertmanager to be ready")
        except BaseException:
            self.stop()
            raise

    def _ready(self) -> bool:
        if self.process.poll() is not None:
            raise AssertionError(f"alertmanager exited with {self.process.returncode}")
        try:
            return requests.get(f"{self.url}/-/ready", timeout=2).status_code == 200
        except requests.RequestException:
            return False

    def stop(self) -> None:
        stop_process(self.process, timeout=10)
        self._log.close()


def receiver(name: str, controller: Controller, token_file: Path | None = None) -> dict[str, Any]:
    """An Alertmanager receiver posting to ``controller`` with the token in ``token_file`` (default: the right one)."""
    webhook = {
        "url": f"{controller.url}/alerts",
        "send_resolved": True,
        "http_config": {
            "authorization": {"type": "Bearer", "credentials_file": str(token_file or controller.token_file)}
        },
    }
    return {"name": name, "webhook_configs": [webhook]}


FAST = {"group_wait": "1s", "group_interval": "1s", "repeat_interval": "1h"}
"""Route timing of the tests: a notification within about a second."""


def wait_until(condition: Any, what: str, timeout: float = WAIT) -> None:
    """Poll ``condition`` every 0.2 s until it holds; fail naming ``what`` after ``timeout`` seconds."""
    deadline = time.monotonic() + timeout
    while not condition():
        if time.monotonic() > deadline:
            raise AssertionError(f"waited {timeout}s for {what}")
        time.sleep(0.2)
