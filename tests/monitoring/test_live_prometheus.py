"""A real Prometheus (Debian's package) scrapes a live model server and a live stream scorer on 127.0.0.1 and
evaluates the PrometheusRule's rules. After traffic, every Grafana dashboard query and every alert expression
returns data."""

from __future__ import annotations

import contextlib
import json
import subprocess
import threading
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import orjson
import pytest
import requests
import yaml

from fraud_detection.schema import FEATURES
from tests.conftest import free_port, stop_process
from tests.monitoring.rules import DASHBOARD, LOOP_GROUP, alerts, as_bool, rule_groups
from tests.serving.conftest import ServerProcess
from tests.streaming.broker import Broker
from tests.streaming.conftest import ScorerProcess, topics_for

pytestmark = pytest.mark.slow

WAIT = 90.0


class Prometheus:
    """``prometheus`` on 127.0.0.1 with a temporary storage directory, scraping every second; ``extra`` is merged
    into its configuration (e.g. ``alerting``)."""

    def __init__(
        self, directory: Path, targets: dict[str, str], groups: dict[str, Any], extra: dict[str, Any] | None = None
    ) -> None:
        for group in groups["groups"]:
            group.pop("interval", None)  # every group at the global 1 s, so the test need not wait 30 s
        (directory / "rules.yaml").write_text(yaml.safe_dump(groups, sort_keys=False))
        config = {
            "global": {"scrape_interval": "1s", "evaluation_interval": "1s"},
            "rule_files": ["rules.yaml"],
            "scrape_configs": [{"job_name": job, "static_configs": [{"targets": [t]}]} for job, t in targets.items()],
            **(extra or {}),
        }
        (directory / "prometheus.yml").write_text(yaml.safe_dump(config))
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.log = (directory / "prometheus.log").open("w")
        self.process = subprocess.Popen(
            [
                "prometheus",
                f"--config.file={directory / 'prometheus.yml'}",
                f"--web.listen-address=127.0.0.1:{self.port}",
                f"--storage.tsdb.path={directory / 'data'}",
            ],
            stdout=self.log,
            stderr=subprocess.STDOUT,
        )

    def query(self, expression: str) -> list[dict[str, Any]]:
        answer = requests.get(f"{self.url}/api/v1/query", params={"query": expression}, timeout=10).json()
        assert answer["status"] == "success", (expression, answer)
        return list(answer["data"]["result"])

    def wait_for(self, expression: str, timeout: float = WAIT) -> list[dict[str, Any]]:
        deadline = time.monotonic() + timeout
        while True:
            if self.process.poll() is not None:
                raise AssertionError(f"prometheus exited with {self.process.returncode}")
            try:
                result = self.query(expression)
                if result:
                    return result
            except requests.RequestException:
                pass
            if time.monotonic() > deadline:
                raise AssertionError(f"no data for {expression!r} after {timeout}s")
            time.sleep(1)

    def stop(self) -> None:
        stop_process(self.process)
        self.log.close()


def _healthy_trickle(
    server_url: str, broker_config: dict[str, Any], topic: str, rows: list[dict[str, Any]], stop: threading.Event
) -> None:
    """One good request and one good message a second until ``stop``: however long the tests take, the
    five-minute rates never go flat, so no-traffic alerts see the traffic that a healthy service has."""
    from confluent_kafka import Producer

    producer = Producer(broker_config)
    url = f"{server_url}/v1/models/fraud-detector:predict"
    sent = 0
    while not stop.wait(1.0):
        row = rows[sent % len(rows)]
        producer.produce(topic, orjson.dumps(row), f"trickle-{sent}".encode())
        producer.poll(0)
        with contextlib.suppress(requests.RequestException):  # the server stopping at teardown
            requests.post(url, json={"instances": [row]}, timeout=10)
        sent += 1
    producer.flush(10)


@pytest.fixture(scope="module")
def live(model_dir: Path, tmp_path_factory: pytest.TempPathFactory) -> Iterator[Prometheus]:
    """A server and a scorer that have seen good and bad traffic, and a Prometheus scraping both."""
    from confluent_kafka import Producer

    from cli.serve import sample_rows

    work = tmp_path_factory.mktemp("live")
    rows = sample_rows(n_legit=40, n_fraud=10)
    with Broker(work / "tansu.log") as broker:
        topics = topics_for("live")
        broker.create_topics(topics["input_topic"], topics["output_topic"], topics["dead_letter_topic"])
        server = ServerProcess(str(model_dir), work / "server.log")
        scorer = ScorerProcess(broker, str(model_dir), work / "scorer.log", topics)
        prometheus = None
        trickle = None
        stop = threading.Event()
        try:
            server.wait_ready()
            scorer.wait_until(lambda: scorer.metric("fraud_model_ready") == 1, what="the scorer's model")
            prometheus = Prometheus(
                work,
                {"fraud-champion": f"127.0.0.1:{server.port}", "fraud-stream-scorer": f"127.0.0.1:{scorer.port}"},
                rule_groups(),
            )
            for job in ("fraud-champion", "fraud-stream-scorer"):  # scraped before, during and after the traffic
                prometheus.wait_for(f'up{{job="{job}"}} == 1')
            producer = Producer(broker.config())
            for round_ in range(5):
                for i, row in enumerate(rows):
                    producer.produce(topics["input_topic"], orjson.dumps(row), f"r{round_}-{i}".encode())
                producer.produce(topics["input_topic"], b"not json", f"bad-{round_}".encode())
                assert producer.flush(30) == 0
                url = f"{server.url}/v1/models/fraud-detector:predict"
                for i in range(0, len(rows), 5):
                    assert requests.post(url, json={"instances": rows[i : i + 5]}, timeout=10).status_code == 200
                bad = {"instances": [{**rows[0], "V1": "x"}]}
                assert requests.post(url, json=bad, timeout=10).status_code == 400
                time.sleep(1.5)
            scorer.wait_scored(5 * (len(rows) + 1))
            trickle = threading.Thread(
                target=_healthy_trickle, args=(server.url, broker.config(), topics["input_topic"], rows, stop)
            )
            trickle.start()
            for job in ("fraud-champion", "fraud-stream-scorer"):
                prometheus.wait_for(f'fraud:predictions:rate5m{{job="{job}"}} > 0')
            prometheus.wait_for("fraud_stream_consumer_lag")  # librdkafka's statistics, every 5 s
            prometheus.wait_for("fraud:flagged:ratio_rate1d")  # the rules have run
            yield prometheus
        finally:
            stop.set()
            if trickle is not None:
                trickle.join(timeout=30)
            if prometheus is not None:
                prometheus.stop()
            scorer.stop()
            server.stop()


def _dashboard_queries() -> list[tuple[str, str]]:
    dashboard = json.loads(DASHBOARD.read_text())
    # The loop's panels sit in a collapsed row (their own "panels"), on the joiner's gauges: test_loop reads them.
    return [(panel["title"], target["expr"]) for panel in dashboard["panels"] for target in panel.get("targets", [])]


def test_the_dashboard_has_the_panels_on_call_engineers_open() -> None:
    titles = {title for title, _ in _dashboard_queries()}
    assert {"Request rate", "HTTP latency quantiles", "Errors", "Flagged rate", "Score distribution"} <= titles
    assert {"Model version", "Consumer lag", "Stream end-to-end latency quantiles"} <= titles


@pytest.mark.parametrize(("panel", "expression"), _dashboard_queries())
def test_every_dashboard_query_returns_data(live: Prometheus, panel: str, expression: str) -> None:
    assert live.wait_for(expression, timeout=30), f"{panel}: {expression}"


@pytest.mark.parametrize("alert", [rule["alert"] for rule in alerts(rule_groups(), leave_out=(LOOP_GROUP,))])
def test_every_alert_expression_returns_data(live: Prometheus, alert: str) -> None:
    rule = next(r for r in alerts(rule_groups()) if r["alert"] == alert)
    result = live.wait_for(as_bool(rule["expr"]), timeout=30)
    # Healthy traffic: the data is there and no alert condition holds.
    assert {sample["value"][1] for sample in result} == {"0"}, (alert, result)


def test_the_model_version_and_both_jobs_are_visible(live: Prometheus) -> None:
    versions = live.query("max by (job, model_version) (fraud_model_info)")
    assert {(s["metric"]["job"], s["metric"]["model_version"]) for s in versions} == {
        ("fraud-champion", "7"),
        ("fraud-stream-scorer", "7"),
    }
    assert len(FEATURES) == 29
