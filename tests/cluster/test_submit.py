"""``fraud submit``: parameters are checked against the compiled pipeline; the KFP path is tested on the exact
requests a real ``kfp.Client`` sends to a stand-in KFP API on 127.0.0.1, the Vertex path on the real
``aiplatform.PipelineJob`` built offline from the compiled YAML."""

from __future__ import annotations

import argparse
import io
import json
import threading
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest
from google.auth.credentials import AnonymousCredentials

from cli import cluster as cli_cluster
from ops import submit
from ops.submit import SubmitError

from .checks import REPO

REAL_PIPELINE = REPO / "pipelines" / "fraud_pipeline.yaml"


@pytest.fixture(scope="module")
def tiny_pipeline(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A small compiled pipeline with one input of every type, one of them required."""
    from .tiny_pipeline import compile_tiny

    return compile_tiny(tmp_path_factory.mktemp("tiny") / "tiny.yaml")


# ---- parameters ------------------------------------------------------------------------------------------------


def test_cli_strings_are_converted_to_the_declared_types(tiny_pipeline: Path) -> None:
    pipeline = submit.read_pipeline(tiny_pipeline)
    pairs = submit.parse_param_pairs(
        ["name=a=b", "count=7", "ratio=0.25", "flag=true", 'tags=["x", "y"]', 'options={"k": 1}']
    )
    values = submit.resolve_parameters(pipeline, pairs)
    assert values == {"count": 7, "flag": True, "name": "a=b", "options": {"k": 1}, "ratio": 0.25, "tags": ["x", "y"]}


@pytest.mark.parametrize(
    ("text", "value"),
    [("on", True), ("off", False), ("yes", True), ("no", False), ("1", True), ("0", False), ("FALSE", False)],
)
def test_a_boolean_takes_the_words_fraud_run_takes(tiny_pipeline: Path, text: str, value: bool) -> None:
    pipeline = submit.read_pipeline(tiny_pipeline)
    assert submit.resolve_parameters(pipeline, {"name": "x", "flag": text})["flag"] is value


def test_a_list_takes_comma_separated_values_too(tiny_pipeline: Path) -> None:
    pipeline = submit.read_pipeline(tiny_pipeline)
    assert submit.resolve_parameters(pipeline, {"name": "x", "tags": "x, y"})["tags"] == ["x", "y"]


def test_param_file_values_are_typed_and_flags_win(tiny_pipeline: Path, tmp_path: Path) -> None:
    file = tmp_path / "params.json"
    file.write_text(json.dumps({"name": "from-file", "count": 3, "ratio": 1}))
    pipeline = submit.read_pipeline(tiny_pipeline)
    values = submit.resolve_parameters(pipeline, {"name": "from-flag"}, submit.read_param_file(file))
    assert values == {"count": 3, "name": "from-flag", "ratio": 1.0}


@pytest.mark.parametrize(
    ("pairs", "message"),
    [
        (["name=x", "depth=3"], r"unknown pipeline parameter\(s\) depth; tiny takes: count, flag, name"),
        (["count=3"], r"required pipeline parameter\(s\) missing: name"),
        (["name=x", "count=three"], "parameter 'count' expects number_integer, got 'three'"),
        (["name=x", "flag=maybe"], "parameter 'flag' expects boolean"),
        (["name=x", "tags={}"], "parameter 'tags' expects list"),
    ],
)
def test_bad_parameters_are_refused_with_the_reason(tiny_pipeline: Path, pairs: list[str], message: str) -> None:
    pipeline = submit.read_pipeline(tiny_pipeline)
    with pytest.raises(SubmitError, match=message):
        submit.resolve_parameters(pipeline, submit.parse_param_pairs(pairs))


def test_json_values_of_the_wrong_type_are_refused(tiny_pipeline: Path) -> None:
    pipeline = submit.read_pipeline(tiny_pipeline)
    with pytest.raises(SubmitError, match=r"parameter 'count' expects number_integer, got 2\.5"):
        submit.resolve_parameters(pipeline, {}, {"name": "x", "count": 2.5})
    with pytest.raises(SubmitError, match="parameter 'name' expects string, got 5"):
        submit.resolve_parameters(pipeline, {}, {"name": 5})


@pytest.mark.parametrize("pair", ["novalue", "=3"])
def test_malformed_param_pairs(pair: str) -> None:
    with pytest.raises(SubmitError, match="--param expects NAME=VALUE"):
        submit.parse_param_pairs([pair])


def test_unreadable_pipelines_are_refused(tmp_path: Path) -> None:
    with pytest.raises(SubmitError, match="compiled pipeline not found"):
        submit.read_pipeline(tmp_path / "missing.yaml")
    bad = tmp_path / "bad.yaml"
    bad.write_text("just: a mapping\n")
    with pytest.raises(SubmitError, match="not a compiled KFP v2 pipeline"):
        submit.read_pipeline(bad)


# ---- KFP: a stand-in API server on 127.0.0.1 -------------------------------------------------------------------


@dataclass
class FakeKfp:
    """Records every request; answers like the KFP v2beta1 API for experiments and runs."""

    port: int = 0
    requests: list[dict[str, Any]] = field(default_factory=list)
    refuse_with: int | None = None  # answer every request with this HTTP status
    refuse_runs_with: int | None = None  # answer only POST /runs with this status
    pipelines: list[dict[str, Any]] = field(default_factory=list)  # pipelines that already exist

    def posted(self, suffix: str) -> dict[str, Any]:
        hits = [r for r in self.requests if r["method"] == "POST" and r["path"].endswith(suffix)]
        assert len(hits) == 1, [r["path"] for r in self.requests]
        return hits[0]


@pytest.fixture()
def kfp_api() -> Iterator[FakeKfp]:
    fake = FakeKfp()

    class Handler(BaseHTTPRequestHandler):
        def _reply(self, payload: dict[str, Any]) -> None:
            body = json.dumps(payload).encode()
            self.send_response(200)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def _record(self, body: Any) -> None:
            fake.requests.append(
                {
                    "method": self.command,
                    "path": self.path,
                    "authorization": self.headers.get("Authorization"),
                    "cookie": self.headers.get("Cookie"),
                    "body": body,
                }
            )

        def _refuse(self, status: int) -> None:
            body = json.dumps({"error": "denied", "code": 7, "message": "nope"}).encode()
            self.send_response(status)
            self.send_header("Content-Type", "application/json")
            self.send_header("Content-Length", str(len(body)))
            self.end_headers()
            self.wfile.write(body)

        def do_GET(self) -> None:
            self._record(None)
            if fake.refuse_with:
                self._refuse(fake.refuse_with)
            elif self.path.startswith("/apis/v2beta1/pipelines?") and fake.pipelines:
                self._reply({"pipelines": fake.pipelines, "total_size": len(fake.pipelines)})
            elif self.path.startswith("/apis/v2beta1/runs/"):
                self._reply({"run_id": self.path.rsplit("/", 1)[-1], "state": "SUCCEEDED"})
            else:
                self._reply({})  # healthz, and "no experiment of that name yet"

        def do_POST(self) -> None:
            length = int(self.headers.get("Content-Length", "0"))
            raw = self.rfile.read(length)
            multipart = self.headers.get("Content-Type", "").startswith("multipart/")
            body = raw.decode("utf-8", "replace") if multipart else json.loads(raw or b"{}")
            self._record(body)
            path = self.path.split("?", 1)[0]
            if fake.refuse_with:
                self._refuse(fake.refuse_with)
            elif fake.refuse_runs_with and self.path == "/apis/v2beta1/runs":
                self._refuse(fake.refuse_runs_with)
            elif self.path == "/apis/v2beta1/experiments":
                self._reply({"experiment_id": "exp-1", "display_name": body["display_name"]})
            elif self.path == "/apis/v2beta1/runs":
                self._reply({"run_id": "run-1", "display_name": body["display_name"], "state": "PENDING"})
            elif path == "/apis/v2beta1/pipelines/upload":
                self._reply({"pipeline_id": "pipe-new", "display_name": "fraud-detection"})
            elif path == "/apis/v2beta1/pipelines/upload_version":
                self._reply({"pipeline_id": "pipe-old", "pipeline_version_id": "ver-2"})
            elif path == "/apis/v2beta1/recurringruns":
                self._reply({"recurring_run_id": "rr-1", **body})
            else:
                self.send_error(404)

        def log_message(self, *args: Any) -> None:
            pass

    server = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
    fake.port = server.server_address[1]
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)
    thread.start()
    try:
        yield fake
    finally:
        server.shutdown()
        server.server_close()
        thread.join(timeout=5)


@pytest.fixture()
def no_kfp_home(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """kfp.Client may read ~/.config/kfp; keep it away from the real home."""
    monkeypatch.setenv("HOME", str(tmp_path))


def test_kfp_submit_sends_exactly_the_planned_run(kfp_api: FakeKfp, no_kfp_home: None) -> None:
    pipeline = submit.read_pipeline(REAL_PIPELINE)
    parameters = submit.resolve_parameters(pipeline, submit.parse_param_pairs(["max_depth=4", "data_uri=gs://b/d.csv"]))
    target = submit.KfpTarget(
        host=f"http://127.0.0.1:{kfp_api.port}",
        namespace="kubeflow",
        experiment="fraud-ci",
        run_name="cd-abc123",
        service_account="fraud-pipeline-runner",
        token="iap-id-token",
    )
    result = submit.submit_kfp(pipeline, target, parameters)
    assert result.run_id == "run-1"
    assert result.url == f"http://127.0.0.1:{kfp_api.port}/#/runs/details/run-1"

    experiment = kfp_api.posted("/experiments")
    assert experiment["body"] == {"display_name": "fraud-ci", "namespace": "kubeflow"}
    run = kfp_api.posted("/runs")
    body = run["body"]
    plan = submit.plan_kfp(pipeline, target, parameters)
    assert body["display_name"] == plan["run_name"] == "cd-abc123"
    assert body["experiment_id"] == "exp-1"
    assert body["service_account"] == plan["service_account"] == "fraud-pipeline-runner"
    assert body["runtime_config"]["parameters"] == plan["parameters"] == {"data_uri": "gs://b/d.csv", "max_depth": 4}
    assert body["pipeline_spec"]["pipelineInfo"]["name"] == plan["pipeline"]["name"] == "fraud-detection"
    assert body["pipeline_spec"]["root"] == pipeline.spec["root"]
    # every call carries the token, and the plan never shows it
    assert {r["authorization"] for r in kfp_api.requests} == {"Bearer iap-id-token"}
    assert "iap-id-token" not in json.dumps(plan)


def test_kfp_wait_reports_the_final_state(kfp_api: FakeKfp, no_kfp_home: None) -> None:
    pipeline = submit.read_pipeline(REAL_PIPELINE)
    target = submit.KfpTarget(host=f"http://127.0.0.1:{kfp_api.port}", cookies="authservice_session=abc")
    result = submit.submit_kfp(pipeline, target, {}, wait=True, timeout_s=10)
    assert result.state == "SUCCEEDED"
    assert kfp_api.requests[-1]["path"] == "/apis/v2beta1/runs/run-1"
    assert all(r["cookie"] == "authservice_session=abc" for r in kfp_api.requests)


def _args(parser_argv: list[str]) -> argparse.Namespace:
    parser = argparse.ArgumentParser(prog="fraud")
    sub = parser.add_subparsers(dest="command", required=True)
    cli_cluster.add_submit_parser(sub)
    cli_cluster.add_logs_parser(sub)
    return parser.parse_args(parser_argv)


def test_cli_kfp_dry_run_sends_nothing(kfp_api: FakeKfp, no_kfp_home: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFP_TOKEN", "secret-token")
    args = _args(
        [
            *["submit", "kfp", str(REAL_PIPELINE), "--host", f"http://127.0.0.1:{kfp_api.port}"],
            *["--param", "n_rounds=10", "--run-name", "try", "--service-account", "fraud-pipeline-runner", "--dry-run"],
        ]
    )
    out = io.StringIO()
    assert args.handler(args, None, out=out) == 0
    plan = json.loads(out.getvalue())
    assert plan["parameters"] == {"n_rounds": 10}
    assert plan["run_name"] == "try"
    assert plan["auth"] == "bearer token (redacted)"
    assert "secret-token" not in out.getvalue()
    assert kfp_api.requests == []


@pytest.mark.parametrize(
    "param, message",
    [
        ("poison_levels=[0.05]", "poison_levels must include 0"),
        ("poison_levels=[0, 0.1]", "robustness_level 0.05 must be one of the non-zero poison_levels [0.1]"),
    ],
)
def test_cli_submit_refuses_parameters_that_disagree(
    kfp_api: FakeKfp, no_kfp_home: None, capsys: pytest.CaptureFixture[str], param: str, message: str
) -> None:
    args = _args(["submit", "kfp", str(REAL_PIPELINE), "--host", f"http://127.0.0.1:{kfp_api.port}", "--param", param])
    assert args.handler(args, None, out=io.StringIO()) == 2
    assert message in capsys.readouterr().err
    assert kfp_api.requests == []


def test_cli_submit_to_kfp(kfp_api: FakeKfp, no_kfp_home: None, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KFP_TOKEN", "t0k")
    args = _args(
        [
            *["submit", "kfp", str(REAL_PIPELINE), "--host", f"http://127.0.0.1:{kfp_api.port}", "--param", "seed=7"],
            *["--wait", "--timeout", "10"],
        ]
    )
    out = io.StringIO()
    assert args.handler(args, None, out=out) == 0
    assert json.loads(out.getvalue())["state"] == "SUCCEEDED"
    assert kfp_api.posted("/runs")["body"]["runtime_config"]["parameters"] == {"seed": 7}


def test_cli_reports_a_bad_parameter_without_sending(
    kfp_api: FakeKfp, no_kfp_home: None, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _args(["submit", "kfp", str(REAL_PIPELINE), "--host", f"http://127.0.0.1:{kfp_api.port}", "--param", "x=1"])
    assert args.handler(args, None) == 2
    assert "unknown pipeline parameter(s) x" in capsys.readouterr().err
    assert kfp_api.requests == []


@pytest.mark.parametrize(("status", "message"), [(401, "refused the credentials"), (404, "no KFP v2 API")])
def test_kfp_endpoint_problems_are_named(kfp_api: FakeKfp, no_kfp_home: None, status: int, message: str) -> None:
    kfp_api.refuse_with = status
    target = submit.KfpTarget(host=f"http://127.0.0.1:{kfp_api.port}", token="stale")
    with pytest.raises(SubmitError, match=message):
        submit.submit_kfp(submit.read_pipeline(REAL_PIPELINE), target, {})
    assert [r["path"] for r in kfp_api.requests] == ["/apis/v2beta1/healthz"]
    assert kfp_api.requests[0]["authorization"] == "Bearer stale"


def test_kfp_unreachable_host_is_named(no_kfp_home: None) -> None:
    from tests.conftest import free_port

    target = submit.KfpTarget(host=f"http://127.0.0.1:{free_port()}")
    with pytest.raises(SubmitError, match=r"cannot reach KFP at http://127\.0\.0\.1"):
        submit.check_kfp_endpoint(target, timeout_s=5)


def test_kfp_refused_run_is_reported_with_its_status(kfp_api: FakeKfp, no_kfp_home: None) -> None:
    kfp_api.refuse_runs_with = 400
    target = submit.KfpTarget(host=f"http://127.0.0.1:{kfp_api.port}")
    with pytest.raises(SubmitError, match=r"KFP refused the run \(HTTP 400\)"):
        submit.submit_kfp(submit.read_pipeline(REAL_PIPELINE), target, {})


def test_kfp_target_refuses_a_bare_host() -> None:
    with pytest.raises(SubmitError, match="http"):
        submit.KfpTarget(host="kfp.example.com")


# ---- KFP schedules ----------------------------------------------------------------------------------------------


def test_kfp_cron_takes_five_or_six_fields() -> None:
    assert submit.kfp_cron("0 3 * * *") == "0 0 3 * * *"
    assert submit.kfp_cron("30 0 3 * * 1-5") == "30 0 3 * * 1-5"
    with pytest.raises(SubmitError, match="cron expression of 5 fields"):
        submit.kfp_cron("daily")


def _schedule_target(kfp_api: FakeKfp) -> submit.KfpTarget:
    return submit.KfpTarget(
        host=f"http://127.0.0.1:{kfp_api.port}",
        experiment="fraud-nightly",
        run_name="nightly",
        service_account="fraud-pipeline-runner",
        token="tok",
    )


def _expected_body(plan: dict[str, Any], pipeline_id: str, experiment_id: str) -> dict[str, Any]:
    body = json.loads(json.dumps(plan["request"]["body"]))
    body["pipeline_version_reference"]["pipeline_id"] = pipeline_id
    body["experiment_id"] = experiment_id
    return body


def test_kfp_schedule_creates_the_pipeline_then_a_recurring_run_on_its_latest_version(
    kfp_api: FakeKfp, no_kfp_home: None
) -> None:
    pipeline = submit.read_pipeline(REAL_PIPELINE)
    parameters = submit.resolve_parameters(pipeline, {"n_rounds": "50"})
    target = _schedule_target(kfp_api)
    result = submit.schedule_kfp(pipeline, target, "0 3 * * *", parameters)
    assert result.run_id == "rr-1"
    assert result.url == f"{target.host}/#/recurringrun/details/rr-1"
    upload = kfp_api.posted("/pipelines/upload?name=fraud-detection")
    assert "pipelineInfo" in upload["body"] and "fraud-detection" in upload["body"]
    sent = kfp_api.posted("/recurringruns")["body"]
    plan = submit.plan_kfp_schedule(pipeline, target, "0 3 * * *", parameters)
    assert sent == _expected_body(plan, "pipe-new", "exp-1")
    # the pipeline alone (no version id): each run takes the latest version; no catch-up; one at a time
    assert sent["pipeline_version_reference"] == {"pipeline_id": "pipe-new"}
    assert "pipeline_spec" not in sent
    assert sent["no_catchup"] is True and sent["max_concurrency"] == 1
    assert sent["trigger"] == {"cron_schedule": {"cron": "0 0 3 * * *"}}
    assert sent["runtime_config"]["parameters"] == {"n_rounds": 50}
    assert sent["mode"] == "ENABLE" and sent["service_account"] == "fraud-pipeline-runner"
    assert {r["authorization"] for r in kfp_api.requests} == {"Bearer tok"}
    assert "tok" not in json.dumps(plan).replace("token", "")


def test_kfp_schedule_adds_a_version_to_an_existing_pipeline(kfp_api: FakeKfp, no_kfp_home: None) -> None:
    kfp_api.pipelines = [{"pipeline_id": "pipe-old", "display_name": "fraud-detection"}]
    pipeline = submit.read_pipeline(REAL_PIPELINE)
    submit.schedule_kfp(pipeline, _schedule_target(kfp_api), "15 2 * * 1", {})
    version = kfp_api.posted("/upload_version?name=" + submit.kfp_version_name(pipeline) + "&pipelineid=pipe-old")
    assert "pipelineInfo" in version["body"]
    assert not [r for r in kfp_api.requests if r["path"].startswith("/apis/v2beta1/pipelines/upload?")]
    sent = kfp_api.posted("/recurringruns")["body"]
    assert sent["pipeline_version_reference"] == {"pipeline_id": "pipe-old"}
    assert sent["trigger"]["cron_schedule"]["cron"] == "0 15 2 * * 1"


def test_cli_kfp_schedule_dry_run_prints_the_request_and_sends_nothing(
    kfp_api: FakeKfp, no_kfp_home: None, capsys: pytest.CaptureFixture[str]
) -> None:
    args = _args(
        [
            *["submit", "kfp", str(REAL_PIPELINE), "--host", f"http://127.0.0.1:{kfp_api.port}"],
            *["--schedule", "0 3 * * *", "--run-name", "nightly", "--param", "seed=9", "--dry-run"],
        ]
    )
    out = io.StringIO()
    assert args.handler(args, None, out=out) == 0
    plan = json.loads(out.getvalue())
    body = plan["request"]["body"]
    assert plan["request"]["path"] == "/apis/v2beta1/recurringruns"
    assert body["display_name"] == "nightly" and body["runtime_config"]["parameters"] == {"seed": 9}
    assert body["trigger"]["cron_schedule"]["cron"] == "0 0 3 * * *" and body["no_catchup"] is True
    assert plan["upload"]["version"] == submit.kfp_version_name(submit.read_pipeline(REAL_PIPELINE))
    assert kfp_api.requests == []
    bad = _args(["submit", "kfp", str(REAL_PIPELINE), "--host", f"http://127.0.0.1:{kfp_api.port}"])
    bad.schedule, bad.wait = "0 3 * * *", True
    assert bad.handler(bad, None, out=io.StringIO()) == 2
    assert "--wait has no meaning with --schedule" in capsys.readouterr().err


# ---- Vertex AI: the real PipelineJob, built offline -------------------------------------------------------------


def _vertex_target(**overrides: Any) -> submit.VertexTarget:
    values: dict[str, Any] = {
        "project": "my-project",
        "region": "europe-west4",
        "pipeline_root": "gs://my-project-fraud/pipeline-root",
        "service_account": "fraud-pipeline@my-project.iam.gserviceaccount.com",
        "run_name": "cd-abc123",
        "job_id": "fraud-cd-abc123",
        "labels": {"commit": "abc123"},
    }
    values.update(overrides)
    return submit.VertexTarget(**values)


@pytest.mark.slow  # importing google.cloud.aiplatform takes ~20 s on a small machine
def test_vertex_request_is_built_from_the_compiled_yaml() -> None:
    pipeline = submit.read_pipeline(REAL_PIPELINE)
    parameters = submit.resolve_parameters(pipeline, {"learning_rate": "0.05", "data_uri": "gs://b/creditcard.csv"})
    target = _vertex_target()
    job = submit.build_vertex_job(pipeline, target, parameters, credentials=AnonymousCredentials())
    request = submit.vertex_request(job, target)
    assert request["parent"] == "projects/my-project/locations/europe-west4"
    assert request["pipeline_job_id"] == "fraud-cd-abc123"
    resource = request["pipeline_job"]
    assert resource["displayName"] == "cd-abc123"
    assert resource["serviceAccount"] == "fraud-pipeline@my-project.iam.gserviceaccount.com"
    assert resource["labels"]["commit"] == "abc123"
    runtime = resource["runtimeConfig"]
    assert runtime["gcsOutputDirectory"] == "gs://my-project-fraud/pipeline-root"
    assert runtime["parameterValues"] == {"learning_rate": 0.05, "data_uri": "gs://b/creditcard.csv"}
    assert resource["pipelineSpec"]["pipelineInfo"]["name"] == "fraud-detection"
    assert resource["pipelineSpec"]["root"] == json.loads(json.dumps(pipeline.spec["root"]))
    # planning does not change the job that would be submitted
    assert job._gca_resource.service_account == ""


def test_vertex_refuses_a_local_pipeline_root() -> None:
    with pytest.raises(SubmitError, match="gs:// URI"):
        _vertex_target(pipeline_root="/tmp/root")


@pytest.mark.slow  # importing google.cloud.aiplatform takes ~20 s on a small machine
def test_cli_vertex_dry_run_prints_the_request(tiny_pipeline: Path) -> None:
    args = _args(
        [
            *["submit", "vertex", str(tiny_pipeline), "--project", "p1", "--region", "us-central1"],
            *["--pipeline-root", "gs://p1-bucket/root", "--service-account", "sa@p1.iam.gserviceaccount.com"],
            *["--param", "name=hello", "--param", "flag=yes", "--label", "team=fraud", "--dry-run"],
        ]
    )
    out = io.StringIO()
    assert args.handler(args, None, out=out) == 0
    plan = json.loads(out.getvalue())
    assert plan["parameters"] == {"flag": True, "name": "hello"}
    request = plan["request"]
    assert request["parent"] == "projects/p1/locations/us-central1"
    assert request["pipeline_job"]["serviceAccount"] == "sa@p1.iam.gserviceaccount.com"
    assert request["pipeline_job"]["runtimeConfig"]["parameterValues"] == {"name": "hello", "flag": True}
    assert request["pipeline_job"]["labels"]["team"] == "fraud"
    assert "pipelineSpec" not in request["pipeline_job"]  # summarised; the sha256 identifies it
    assert plan["pipeline"]["sha256"] == submit.read_pipeline(tiny_pipeline).sha256


@pytest.mark.slow  # importing google.cloud.aiplatform takes ~20 s on a small machine
def test_vertex_schedule_sends_exactly_the_planned_request() -> None:
    pipeline = submit.read_pipeline(REAL_PIPELINE)
    parameters = submit.resolve_parameters(pipeline, {"n_rounds": "80"})
    target = _vertex_target()
    job = submit.build_vertex_job(pipeline, target, parameters, credentials=AnonymousCredentials())
    schedule = submit.build_vertex_schedule(job, target, credentials=AnonymousCredentials())
    plan = submit.plan_vertex_schedule(pipeline, target, schedule, "TZ=Europe/Amsterdam 0 3 * * *", parameters)
    request = plan["request"]
    assert request["parent"] == "projects/my-project/locations/europe-west4"
    resource = request["schedule"]
    assert resource["cron"] == "TZ=Europe/Amsterdam 0 3 * * *"
    assert resource["maxConcurrentRunCount"] == "1" and not resource.get("allowQueueing", False)
    job_request = resource["createPipelineJobRequest"]
    assert job_request["parent"] == "projects/my-project/locations/europe-west4"
    assert job_request["pipelineJob"]["serviceAccount"] == target.service_account
    assert job_request["pipelineJob"]["runtimeConfig"]["parameterValues"] == {"n_rounds": 80}

    sent: list[dict[str, Any]] = []

    class Recorder:
        """Stands in for the Vertex AI API client (Google's API cannot be reached here): keeps the request."""

        def create_schedule(self, parent: str, schedule: Any, timeout: Any = None) -> Any:
            from google.protobuf.json_format import MessageToDict

            sent.append({"parent": parent, "schedule": MessageToDict(type(schedule).pb(schedule))})
            created = type(schedule)(schedule)
            created.name = f"{parent}/schedules/1"
            return created

    schedule.api_client = Recorder()
    result = submit.schedule_vertex(schedule, target, "TZ=Europe/Amsterdam 0 3 * * *")
    assert result.run_id == "projects/my-project/locations/europe-west4/schedules/1"
    (request_sent,) = sent
    full = submit.vertex_schedule_request(
        submit.build_vertex_schedule(job, target, credentials=AnonymousCredentials()),
        target,
        "TZ=Europe/Amsterdam 0 3 * * *",
    )
    assert request_sent == full
    assert request_sent["schedule"]["createPipelineJobRequest"]["pipelineJob"]["pipelineSpec"]["root"] == json.loads(
        json.dumps(pipeline.spec["root"])
    )


def test_vertex_cron_refuses_a_bad_expression() -> None:
    assert submit.vertex_cron("TZ=UTC 0 3 * * *") == "TZ=UTC 0 3 * * *"
    with pytest.raises(SubmitError, match="5 fields"):
        submit.vertex_cron("0 0 3 * * *")
