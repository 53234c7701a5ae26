"""Named Cloud Logging queries: the filters they print, their errors, and a contract test that runs every query
against the JSON lines a real model server process writes."""

from __future__ import annotations

import argparse
import io
import shutil
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest

from cli import cluster as cli_cluster
from ops import logquery
from ops.logquery import QueryError
from tests.serving.conftest import otlp_receiver  # noqa: F401  (a real OTLP gRPC receiver, for the contract test)


def _args(argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fraud")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_cluster.add_logs_parser(sub)
    return parser.parse_args(argv)


def test_every_query_renders_scoped_to_the_server_containers() -> None:
    since = datetime(2026, 1, 2, 3, 4, 5, tzinfo=UTC)
    for name, query in logquery.QUERIES.items():
        value = {"TRACE_ID": "0af7651916cd43dd8448eb211c80319c"}.get(
            query.argument or "", "x1" if query.argument else None
        )
        if query.argument == "MS":
            value = "250"
        text = logquery.build_filter(name, value, project="my-project", since=since)
        lines = text.splitlines()
        assert lines[:5] == [
            'resource.type="k8s_container"',
            'resource.labels.namespace_name="fraud"',
            'resource.labels.container_name="kserve-container"',
            'resource.labels.project_id="my-project"',
            'timestamp>="2026-01-02T03:04:05Z"',
        ], name
        assert len(lines) > 5, name


@pytest.mark.parametrize(
    ("name", "value", "expected"),
    [
        ("flagged", None, ['jsonPayload.event="prediction"', "jsonPayload.flagged>0"]),
        ("errors", None, ['(severity>="ERROR" OR httpRequest.status>=500)']),
        ("rejected", None, ["httpRequest.status>=400", "httpRequest.status<500"]),
        ("slow", None, ['jsonPayload.event="prediction"', "jsonPayload.latency_ms>=50"]),
        ("slow", "12.5", ['jsonPayload.event="prediction"', "jsonPayload.latency_ms>=12.5"]),
        ("request", "req-42", ['jsonPayload.request_id="req-42"']),
        ("trace", "0af7651916cd43dd8448eb211c80319c", ['trace="projects/p/traces/0af7651916cd43dd8448eb211c80319c"']),
        ("trace", "projects/q/traces/abc", ['trace="projects/q/traces/abc"']),
        ("model-version", "7", ['jsonPayload.event="prediction"', 'jsonPayload.model_version="7"']),
    ],
)
def test_query_clauses(name: str, value: str | None, expected: list[str]) -> None:
    text = logquery.build_filter(name, value, project="p")
    assert text.splitlines()[4:] == expected


@pytest.mark.parametrize(
    ("name", "value", "project", "message"),
    [
        ("nosuch", None, None, "unknown query 'nosuch'; choose one of: flagged, errors"),
        ("request", None, None, "query 'request' needs REQUEST_ID"),
        ("flagged", "x", None, "query 'flagged' takes no argument"),
        ("trace", "not-hex", "p", "a trace id is 32 hex digits"),
        ("trace", "0af7651916cd43dd8448eb211c80319c", None, "needs --project"),
        ("slow", "fast", None, "MS must be a number"),
        ("slow", "-3", None, "MS must be >= 0"),
    ],
)
def test_query_errors_name_the_problem(name: str, value: str | None, project: str | None, message: str) -> None:
    with pytest.raises(QueryError, match=message):
        logquery.build_filter(name, value, project=project)


def test_since_accepts_durations_and_timestamps() -> None:
    now = datetime(2026, 5, 1, 12, 0, tzinfo=UTC)
    assert logquery.parse_since("90m", now) == datetime(2026, 5, 1, 10, 30, tzinfo=UTC)
    assert logquery.parse_since("2d", now) == datetime(2026, 4, 29, 12, 0, tzinfo=UTC)
    assert logquery.parse_since("2026-04-30T08:00:00Z") == datetime(2026, 4, 30, 8, 0, tzinfo=UTC)
    with pytest.raises(QueryError, match="--since takes 30m"):
        logquery.parse_since("yesterday")


def test_cli_prints_the_filter() -> None:
    args = _args(["logs", "request", "req-9", "--project", "p", "--since", "2026-01-01T00:00:00Z"])
    out = io.StringIO()
    assert args.handler(args, None, out=out) == 0
    assert out.getvalue().splitlines()[-1] == 'jsonPayload.request_id="req-9"'
    assert 'timestamp>="2026-01-01T00:00:00Z"' in out.getvalue()


def test_cli_refuses_bad_input_with_exit_2(capsys: pytest.CaptureFixture[str]) -> None:
    args = _args(["logs", "model-version"])
    assert args.handler(args, None) == 2
    assert "needs VERSION" in capsys.readouterr().err
    args = _args(["logs", "flagged", "--fetch"])
    assert args.handler(args, None) == 2
    assert "--fetch needs --project" in capsys.readouterr().err


def test_cli_fetch_failures_are_reported(monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]) -> None:
    import google.api_core.exceptions
    import google.auth.exceptions

    def denied(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        raise google.api_core.exceptions.PermissionDenied("logging.logEntries.list denied")

    def no_credentials(*args: Any, **kwargs: Any) -> list[dict[str, Any]]:
        raise google.auth.exceptions.DefaultCredentialsError("no ADC")

    args = _args(["logs", "errors", "--project", "p", "--fetch"])
    monkeypatch.setattr(logquery, "fetch", denied)
    assert args.handler(args, None) == 1
    assert "Cloud Logging refused the query: logging.logEntries.list denied" in capsys.readouterr().err
    monkeypatch.setattr(logquery, "fetch", no_credentials)
    assert args.handler(args, None) == 2
    assert "application-default login" in capsys.readouterr().err


def test_fetch_sends_the_filter_to_cloud_logging() -> None:
    """google-cloud-logging's client is the one part that needs Google: check the exact call it gets."""

    class Entry:
        def __init__(self, payload: dict[str, Any]) -> None:
            self.payload = payload

        def to_api_repr(self) -> dict[str, Any]:
            return {"jsonPayload": self.payload}

    class Client:
        def __init__(self) -> None:
            self.calls: list[dict[str, Any]] = []

        def list_entries(self, **kwargs: Any) -> list[Entry]:
            self.calls.append(kwargs)
            return [Entry({"event": "prediction"})]

    client = Client()
    filter_ = logquery.build_filter("flagged", project="p")
    entries = logquery.fetch(filter_, "p", limit=5, client=client)
    assert entries == [{"jsonPayload": {"event": "prediction"}}]
    assert client.calls == [
        {"resource_names": ["projects/p"], "filter_": filter_, "order_by": "timestamp desc", "max_results": 5}
    ]


def test_matches_follows_cloud_logging_semantics() -> None:
    entry = logquery.log_entry(
        {"severity": "WARNING", "httpRequest": {"status": 400}, "request_id": "a", "latency_ms": 3.5}
    )
    assert entry == {
        "severity": "WARNING",
        "httpRequest": {"status": 400},
        "jsonPayload": {"request_id": "a", "latency_ms": 3.5},
    }
    assert logquery.matches(logquery.terms_for("rejected"), entry)
    assert not logquery.matches(logquery.terms_for("errors"), entry)  # WARNING < ERROR, 400 < 500
    assert logquery.matches(logquery.terms_for("request", "a"), entry)
    assert not logquery.matches(logquery.terms_for("request", "b"), entry)
    assert not logquery.matches(logquery.terms_for("flagged"), entry)  # a missing field never matches


# ---- contract: every query against real server output -----------------------------------------------------------


@pytest.mark.slow
def test_every_query_field_exists_in_real_server_logs(
    tmp_path: Path,
    otlp_receiver: Any,  # noqa: F811  (the fixture imported above)
) -> None:
    import requests

    from fraud_detection import synth
    from fraud_detection.schema import FEATURES, LABEL
    from tests.serving.conftest import MODEL_VERSION, ServerProcess, make_model_dir

    model = make_model_dir(tmp_path / "trained")
    mount = tmp_path / "mnt-models"  # empty at start: the server logs a real ERROR, then loads once it appears
    mount.mkdir()
    env = {
        "FRAUD_TRACING_EXPORTER": "otlp",
        "FRAUD_OTLP_ENDPOINT": otlp_receiver.endpoint,
        "FRAUD_GCP_PROJECT": "test-project",
        "FRAUD_LOAD_RETRY_SECONDS": "1",
    }
    server = ServerProcess(str(mount), tmp_path / "server.log", env)
    try:
        server.wait_live()
        server.wait_until(
            lambda: any(r.get("severity") == "ERROR" for r in server.log_records()), timeout=60, what="load error"
        )
        for item in model.iterdir():
            shutil.copy2(item, mount / item.name)
        server.wait_ready()

        frame = synth.generate(synth.SyntheticConfig(n_rows=20_000, seed=11))
        fraud_rows = frame[frame[LABEL] == 1][list(FEATURES)].head(20)
        trace_id = "4bf92f3577b34da6a3ce929d0e0e4736"
        headers = {"x-request-id": "contract-1", "traceparent": f"00-{trace_id}-00f067aa0ba902b7-01"}
        body = {"instances": fraud_rows.to_dict(orient="records")}
        url = f"{server.url}/v1/models/fraud-detector:predict"
        predicted = requests.post(url, json=body, headers=headers, timeout=30)
        assert predicted.status_code == 200, predicted.text
        bad = requests.post(
            url,
            json={"instances": [{"V1": "not a number"}]},
            headers={"x-request-id": "contract-bad"},
            timeout=30,
        )
        assert bad.status_code == 400, bad.text
        server.wait_until(
            lambda: {"contract-1", "contract-bad"} <= {r.get("request_id") for r in server.log_records()},
            timeout=30,
            what="the log lines of both requests",
        )
    finally:
        server.stop()

    entries = [logquery.log_entry(r) for r in server.log_records()]
    values = {
        "slow": "0",
        "request": "contract-1",
        "trace": trace_id,
        "model-version": MODEL_VERSION,
    }
    hits: dict[str, list[dict[str, Any]]] = {}
    for name in logquery.QUERIES:
        terms = logquery.terms_for(name, values.get(name), project="test-project")
        for path in logquery.fields_of(terms):
            assert any(logquery._lookup(e, path)[0] for e in entries), f"{name}: no real log line has {path}"
        hits[name] = [e for e in entries if logquery.matches(terms, e)]
        assert hits[name], f"query {name} matches no real log line"

    def request_ids(name: str) -> set[str]:
        return {e["jsonPayload"].get("request_id") for e in hits[name]}

    assert request_ids("flagged") == {"contract-1"}
    assert all(e["jsonPayload"]["flagged"] > 0 for e in hits["flagged"])
    assert request_ids("rejected") == {"contract-bad"}
    assert request_ids("request") == {"contract-1"}
    assert "prediction" in {e["jsonPayload"].get("event") for e in hits["request"]}
    assert all(e["httpRequest"]["status"] == 400 for e in hits["rejected"])
    assert request_ids("trace") == {"contract-1"}
    assert all(e["jsonPayload"]["event"] == "prediction" for e in hits["slow"] + hits["model-version"])
    assert any("model not loaded" in e["jsonPayload"].get("message", "") for e in hits["errors"])
