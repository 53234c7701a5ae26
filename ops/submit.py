"""Submit a compiled pipeline to Kubeflow Pipelines (``kfp.Client``) or Vertex AI Pipelines (``PipelineJob``).

Pure library: nothing here reads the environment or the command line. ``fraud submit`` (cli/cluster.py) builds
the targets from its flags. Every path has a plan (``--dry-run``): the exact parameters, names and request that
would be sent, with secrets redacted. Parameter values are checked and converted against the compiled
pipeline's declared input types before anything is sent (by the library's parsers, :mod:`fraud_detection.parsers`,
which ``fraud run`` uses too), so a typo fails here with the valid names listed.
"""

from __future__ import annotations

import hashlib
import json
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import yaml
from pydantic import TypeAdapter, ValidationError

from fraud_detection import parsers


class SubmitError(ValueError):
    """The pipeline file, a parameter or a target setting is wrong; the message names it."""


# ---- the compiled pipeline and its parameters ----------------------------------------------------------------


@dataclass(frozen=True)
class CompiledPipeline:
    """A compiled KFP v2 pipeline (IR YAML) and what submitting needs from it."""

    path: Path
    spec: dict[str, Any]

    @property
    def name(self) -> str:
        """The pipeline name (``pipelineInfo.name``)."""
        return str(self.spec["pipelineInfo"]["name"])

    @property
    def sha256(self) -> str:
        """Content hash of the YAML file, so a plan identifies exactly which compile is sent."""
        return hashlib.sha256(self.path.read_bytes()).hexdigest()

    @property
    def parameters(self) -> dict[str, dict[str, Any]]:
        """Declared pipeline inputs: name -> {parameterType, defaultValue?, isOptional?}."""
        root = self.spec.get("root", {})
        return dict(root.get("inputDefinitions", {}).get("parameters", {}))


def read_pipeline(path: Path | str) -> CompiledPipeline:
    """Load a compiled pipeline YAML and check it is a KFP v2 pipeline spec."""
    path = Path(path)
    if not path.is_file():
        raise SubmitError(f"compiled pipeline not found: {path} (run `fraud compile` first)")
    try:
        spec = yaml.safe_load(path.read_text())
    except yaml.YAMLError as exc:
        raise SubmitError(f"{path} is not valid YAML: {exc}") from exc
    if not isinstance(spec, dict) or "pipelineInfo" not in spec or "root" not in spec:
        raise SubmitError(f"{path} is not a compiled KFP v2 pipeline (no pipelineInfo/root)")
    return CompiledPipeline(path=path, spec=spec)


def parse_param_pairs(pairs: Iterable[str]) -> dict[str, str]:
    """``NAME=VALUE`` strings (as given on the command line) to a dict; the value may contain ``=``."""
    result: dict[str, str] = {}
    for pair in pairs:
        name, sep, value = pair.partition("=")
        name = name.strip()
        if not sep or not name:
            raise SubmitError(f"--param expects NAME=VALUE, got {pair!r}")
        if name in result:
            raise SubmitError(f"parameter {name!r} given twice")
        result[name] = value
    return result


def read_param_file(path: Path | str) -> dict[str, Any]:
    """A JSON file holding one object of parameter values."""
    path = Path(path)
    try:
        data = json.loads(path.read_text())
    except FileNotFoundError as exc:
        raise SubmitError(f"parameter file not found: {path}") from exc
    except json.JSONDecodeError as exc:
        raise SubmitError(f"parameter file {path} is not valid JSON: {exc}") from exc
    if not isinstance(data, dict):
        raise SubmitError(f"parameter file {path} must hold a JSON object of NAME: VALUE")
    return data


KINDS: dict[str, Any] = {
    "STRING": parsers.Text,
    "NUMBER_INTEGER": parsers.Whole,
    "NUMBER_DOUBLE": parsers.Number,
    "BOOLEAN": parsers.Flag,
    "LIST": parsers.ListOf[Any],
    "STRUCT": parsers.JsonObject,
}
"""Each KFP parameter type's parser: the library's, which ``fraud run`` and the knob declarations use too."""


def parse_parameter(name: str, kind: str, value: Any) -> Any:
    """One value (command-line text or a JSON value) as the declared KFP parameter type."""
    if kind not in KINDS:
        raise SubmitError(f"parameter {name!r} has a type this tool does not know: {kind}")
    try:
        return TypeAdapter(KINDS[kind]).validate_python(value)
    except ValidationError as exc:
        raise SubmitError(f"parameter {name!r} expects {kind.lower()}, got {value!r}") from exc


def resolve_parameters(
    pipeline: CompiledPipeline, given: Mapping[str, Any], file_values: Mapping[str, Any] | None = None
) -> dict[str, Any]:
    """Merge file values and ``--param`` values (the latter win), check every name against the pipeline's inputs,
    convert to the declared types and require the inputs that have no default. Returns only what is sent."""
    declared = pipeline.parameters
    merged: dict[str, Any] = {**(file_values or {}), **given}
    unknown = sorted(set(merged) - set(declared))
    if unknown:
        raise SubmitError(
            f"unknown pipeline parameter(s) {', '.join(unknown)}; {pipeline.name} takes: {', '.join(sorted(declared))}"
        )
    values = {name: parse_parameter(name, declared[name]["parameterType"], value) for name, value in merged.items()}
    missing = sorted(
        name
        for name, spec in declared.items()
        if name not in values and not spec.get("isOptional") and "defaultValue" not in spec
    )
    if missing:
        raise SubmitError(f"required pipeline parameter(s) missing: {', '.join(missing)}")
    return dict(sorted(values.items()))


# ---- Kubeflow Pipelines --------------------------------------------------------------------------------------


@dataclass(frozen=True)
class KfpTarget:
    """Where and how to reach a KFP API server.

    ``token`` is sent as ``Authorization: Bearer``: an IAP ID token for an IAP-protected endpoint, or a
    Kubernetes service-account token for Kubeflow behind Dex/oauth2-proxy. ``cookies`` is for a Dex session
    (``authservice_session=...``). Neither is ever printed.
    """

    host: str
    namespace: str = "kubeflow"
    experiment: str = "fraud-detection"
    run_name: str = "fraud-detection"
    service_account: str | None = None
    pipeline_root: str | None = None
    enable_caching: bool | None = None
    token: str | None = field(default=None, repr=False)
    cookies: str | None = field(default=None, repr=False)
    ssl_ca_cert: str | None = None

    def __post_init__(self) -> None:
        if not self.host.startswith(("http://", "https://")):
            raise SubmitError(f"KFP host must be an http(s) URL, got {self.host!r}")
        if not self.run_name:
            raise SubmitError("run name must not be empty")


def _auth_kind(target: KfpTarget) -> str:
    kinds = []
    if target.token:
        kinds.append("bearer token (redacted)")
    if target.cookies:
        kinds.append("cookies (redacted)")
    return " + ".join(kinds) or "none"


def plan_kfp(pipeline: CompiledPipeline, target: KfpTarget, parameters: Mapping[str, Any]) -> dict[str, Any]:
    """What ``submit_kfp`` sends: the run request's fields, the pipeline's identity, and the auth kind."""
    return {
        "target": "kfp",
        "host": target.host,
        "namespace": target.namespace,
        "experiment": target.experiment,
        "run_name": target.run_name,
        "service_account": target.service_account,
        "pipeline_root": target.pipeline_root,
        "enable_caching": target.enable_caching,
        "pipeline": {"name": pipeline.name, "file": str(pipeline.path), "sha256": pipeline.sha256},
        "parameters": dict(parameters),
        "auth": _auth_kind(target),
    }


@dataclass(frozen=True)
class SubmitResult:
    """A submitted run: its id, where to look at it, and its final state when waited for."""

    run_id: str
    url: str | None = None
    state: str | None = None


def _auth_headers(target: KfpTarget) -> dict[str, str]:
    headers = {}
    if target.token:
        headers["Authorization"] = f"Bearer {target.token}"
    if target.cookies:
        headers["Cookie"] = target.cookies
    return headers


def check_kfp_endpoint(target: KfpTarget, timeout_s: float = 15.0) -> None:
    """One ``GET /apis/v2beta1/healthz`` with the run's credentials, so a wrong host, a refused token or an
    unreachable endpoint fails with a message saying which (kfp.Client reports all three as a healthz timeout)."""
    import requests

    url = f"{target.host.rstrip('/')}/apis/v2beta1/healthz"
    verify: bool | str = target.ssl_ca_cert or True
    try:
        response = requests.get(url, headers=_auth_headers(target), timeout=timeout_s, verify=verify)
    except requests.RequestException as exc:
        raise SubmitError(f"cannot reach KFP at {target.host}: {exc}") from exc
    if response.status_code in (401, 403):
        raise SubmitError(
            f"KFP at {target.host} refused the credentials (HTTP {response.status_code}): set KFP_TOKEN "
            "(IAP ID token or Kubernetes service-account token), --iap-audience, or KFP_COOKIES (Dex session)"
        )
    if response.status_code == 404:
        raise SubmitError(f"no KFP v2 API at {target.host} (GET /apis/v2beta1/healthz: 404); give the API base URL")
    if response.status_code >= 400:
        raise SubmitError(f"KFP at {target.host} answered HTTP {response.status_code}: {response.text[:300]}")


def kfp_client(target: KfpTarget) -> Any:
    """A ``kfp.Client`` for the target (no request is made until a call)."""
    import kfp  # heavy import, only when actually talking to KFP

    return kfp.Client(
        host=target.host,
        namespace=target.namespace,
        existing_token=target.token,
        cookies=target.cookies,
        ssl_ca_cert=target.ssl_ca_cert,
    )


def submit_kfp(
    pipeline: CompiledPipeline,
    target: KfpTarget,
    parameters: Mapping[str, Any],
    *,
    wait: bool = False,
    timeout_s: int = 6 * 3600,
    client_factory: Callable[[KfpTarget], Any] = kfp_client,
) -> SubmitResult:
    """Check the endpoint, create the experiment if needed and start one run; optionally block until it ends."""
    from kfp_server_api.exceptions import ApiException

    check_kfp_endpoint(target)
    client = client_factory(target)
    try:
        result = client.create_run_from_pipeline_package(
            pipeline_file=str(pipeline.path),
            arguments=dict(parameters),
            run_name=target.run_name,
            experiment_name=target.experiment,
            namespace=target.namespace,
            pipeline_root=target.pipeline_root,
            enable_caching=target.enable_caching,
            service_account=target.service_account,
        )
    except ApiException as exc:
        raise SubmitError(f"KFP refused the run (HTTP {exc.status}): {str(exc.body)[:500]}") from exc
    run_id = str(result.run_id)
    url = f"{target.host.rstrip('/')}/#/runs/details/{run_id}"
    if not wait:
        return SubmitResult(run_id=run_id, url=url)
    run = client.wait_for_run_completion(run_id, timeout=timeout_s)
    return SubmitResult(run_id=run_id, url=url, state=str(run.state))


# ---- Vertex AI Pipelines -------------------------------------------------------------------------------------


@dataclass(frozen=True)
class VertexTarget:
    """A Vertex AI Pipelines run: project, region, pipeline root on GCS and the run's service account."""

    project: str
    region: str
    pipeline_root: str
    service_account: str | None = None
    run_name: str = "fraud-detection"
    job_id: str | None = None
    enable_caching: bool | None = None
    labels: Mapping[str, str] = field(default_factory=dict)
    network: str | None = None

    def __post_init__(self) -> None:
        if not self.project:
            raise SubmitError("Vertex AI needs a project")
        if not self.region:
            raise SubmitError("Vertex AI needs a region (e.g. europe-west4)")
        if not self.pipeline_root.startswith("gs://"):
            raise SubmitError(f"Vertex AI pipeline root must be a gs:// URI, got {self.pipeline_root!r}")


def build_vertex_job(
    pipeline: CompiledPipeline, target: VertexTarget, parameters: Mapping[str, Any], credentials: Any = None
) -> Any:
    """The ``aiplatform.PipelineJob`` for this run, built locally (constructing it makes no API call)."""
    from google.cloud import aiplatform  # heavy import, only for Vertex

    return aiplatform.PipelineJob(
        display_name=target.run_name,
        template_path=str(pipeline.path),
        job_id=target.job_id,
        pipeline_root=target.pipeline_root,
        parameter_values=dict(parameters),
        enable_caching=target.enable_caching,
        labels=dict(target.labels) or None,
        credentials=credentials,
        project=target.project,
        location=target.region,
    )


def vertex_request(job: Any, target: VertexTarget) -> dict[str, Any]:
    """The CreatePipelineJob request ``submit_vertex`` sends: parent, job id and the PipelineJob resource
    (with the service account and network ``PipelineJob.submit`` sets), as JSON."""
    from google.protobuf.json_format import MessageToDict

    resource = type(job._gca_resource)(job._gca_resource)  # a copy: planning never changes the job
    if target.service_account:
        resource.service_account = target.service_account
    if target.network:
        resource.network = target.network
    return {
        "parent": job._parent,
        "pipeline_job_id": job.job_id,
        "pipeline_job": MessageToDict(type(resource).pb(resource)),
    }


def plan_vertex(
    pipeline: CompiledPipeline, target: VertexTarget, job: Any, parameters: Mapping[str, Any]
) -> dict[str, Any]:
    """What ``submit_vertex`` sends, summarised, plus the full request without the (large) pipeline spec."""
    request = vertex_request(job, target)
    resource = dict(request["pipeline_job"])
    resource.pop("pipelineSpec", None)
    return {
        "target": "vertex",
        "project": target.project,
        "region": target.region,
        "pipeline_root": target.pipeline_root,
        "service_account": target.service_account,
        "run_name": target.run_name,
        "pipeline": {"name": pipeline.name, "file": str(pipeline.path), "sha256": pipeline.sha256},
        "parameters": dict(parameters),
        "request": {**request, "pipeline_job": resource},
    }


def submit_vertex(job: Any, target: VertexTarget, *, wait: bool = False) -> SubmitResult:
    """Submit the job (one CreatePipelineJob call); optionally block until it ends."""
    job.submit(service_account=target.service_account, network=target.network)
    if not wait:
        return SubmitResult(run_id=job.resource_name, url=job._dashboard_uri())
    try:
        job.wait()
    except RuntimeError as exc:  # aiplatform raises when the run failed or was cancelled
        return SubmitResult(run_id=job.resource_name, url=job._dashboard_uri(), state=f"FAILED: {exc}")
    return SubmitResult(run_id=job.resource_name, url=job._dashboard_uri(), state=str(job.state.name))


# ---- schedules -----------------------------------------------------------------------------------------------


def kfp_cron(cron: str) -> str:
    """A cron expression for KFP, whose schedules take six fields (seconds first): a standard five-field
    expression gets ``0`` seconds; six fields pass unchanged."""
    fields = cron.split()
    if len(fields) == 5:
        return "0 " + " ".join(fields)
    if len(fields) == 6:
        return " ".join(fields)
    raise SubmitError(f"--schedule expects a cron expression of 5 fields (minute hour day month weekday), got {cron!r}")


def vertex_cron(cron: str) -> str:
    """A cron expression for Vertex AI (unix cron, five fields, optionally ``TZ=Area/City`` first)."""
    fields = cron.split()
    zone = fields[0] if fields and fields[0].startswith(("TZ=", "CRON_TZ=")) else None
    if len(fields) - (zone is not None) != 5:
        raise SubmitError(
            f"--schedule expects a cron expression of 5 fields (minute hour day month weekday), got {cron!r}"
        )
    return " ".join(fields)


def kfp_version_name(pipeline: CompiledPipeline) -> str:
    """The pipeline version a schedule's upload creates: the pipeline's name and its content hash."""
    return f"{pipeline.name}-{pipeline.sha256[:12]}"


def kfp_recurring_run(
    pipeline_id: str, experiment_id: str, target: KfpTarget, cron: str, parameters: Mapping[str, Any]
) -> Any:
    """The ``V2beta1RecurringRun`` a schedule creates: the pipeline by id only, so each run takes the pipeline's
    latest version (KFP 2.5+); no catch-up of missed runs; one run at a time."""
    import kfp_server_api

    return kfp_server_api.V2beta1RecurringRun(
        display_name=target.run_name,
        experiment_id=experiment_id,
        pipeline_version_reference=kfp_server_api.V2beta1PipelineVersionReference(pipeline_id=pipeline_id),
        runtime_config=kfp_server_api.V2beta1RuntimeConfig(
            parameters=dict(parameters), pipeline_root=target.pipeline_root
        ),
        trigger=kfp_server_api.V2beta1Trigger(cron_schedule=kfp_server_api.V2beta1CronSchedule(cron=kfp_cron(cron))),
        mode=kfp_server_api.RecurringRunMode.ENABLE,
        max_concurrency=1,
        no_catchup=True,
        service_account=target.service_account,
    )


def _as_json(model: Any) -> dict[str, Any]:
    import kfp_server_api

    return dict(kfp_server_api.ApiClient().sanitize_for_serialization(model))


PIPELINE_ID_PLACEHOLDER = "<id of the pipeline named {name!r}: looked up, or created by the upload>"
EXPERIMENT_ID_PLACEHOLDER = "<id of the experiment named {name!r}: looked up, or created>"


def plan_kfp_schedule(
    pipeline: CompiledPipeline, target: KfpTarget, cron: str, parameters: Mapping[str, Any]
) -> dict[str, Any]:
    """What ``schedule_kfp`` sends: the pipeline upload (a new version of the named pipeline) and the exact
    recurring-run request body, with the ids it learns on the way shown as placeholders."""
    body = kfp_recurring_run(
        PIPELINE_ID_PLACEHOLDER.format(name=pipeline.name),
        EXPERIMENT_ID_PLACEHOLDER.format(name=target.experiment),
        target,
        cron,
        parameters,
    )
    return {
        "target": "kfp-schedule",
        "host": target.host,
        "namespace": target.namespace,
        "experiment": target.experiment,
        "upload": {
            "pipeline": pipeline.name,
            "version": kfp_version_name(pipeline),
            "file": str(pipeline.path),
            "sha256": pipeline.sha256,
        },
        "request": {"method": "POST", "path": "/apis/v2beta1/recurringruns", "body": _as_json(body)},
        "auth": _auth_kind(target),
    }


def schedule_kfp(
    pipeline: CompiledPipeline,
    target: KfpTarget,
    cron: str,
    parameters: Mapping[str, Any],
    *,
    client_factory: Callable[[KfpTarget], Any] = kfp_client,
) -> SubmitResult:
    """Upload the compiled pipeline as the newest version of its pipeline (creating the pipeline the first time),
    then create a recurring run on it that always takes the latest version."""
    from kfp_server_api.exceptions import ApiException

    kfp_cron(cron)  # refuse a bad expression before anything is sent
    check_kfp_endpoint(target)
    client = client_factory(target)
    try:
        pipeline_id = client.get_pipeline_id(pipeline.name)
        if pipeline_id is None:
            pipeline_id = client.upload_pipeline(str(pipeline.path), pipeline_name=pipeline.name).pipeline_id
        else:
            try:
                client.upload_pipeline_version(
                    str(pipeline.path), kfp_version_name(pipeline), pipeline_id=str(pipeline_id)
                )
            except ApiException as exc:
                if exc.status != 409:  # 409: this very compile is already a version
                    raise
        experiment = client.create_experiment(target.experiment, namespace=target.namespace)
        body = kfp_recurring_run(str(pipeline_id), str(experiment.experiment_id), target, cron, parameters)
        # kfp.Client.create_recurring_run insists on a pinned version; the API itself takes the pipeline alone.
        created = client._recurring_run_api.recurring_run_service_create_recurring_run(recurring_run=body)
    except ApiException as exc:
        raise SubmitError(f"KFP refused the schedule (HTTP {exc.status}): {str(exc.body)[:500]}") from exc
    run_id = str(created.recurring_run_id)
    return SubmitResult(run_id=run_id, url=f"{target.host.rstrip('/')}/#/recurringrun/details/{run_id}")


def build_vertex_schedule(job: Any, target: VertexTarget, credentials: Any = None) -> Any:
    """The ``aiplatform.PipelineJobSchedule`` over ``job``, built locally (no API call)."""
    from google.cloud import aiplatform

    return aiplatform.PipelineJobSchedule(
        pipeline_job=job,
        display_name=target.run_name,
        credentials=credentials,
        project=target.project,
        location=target.region,
    )


VERTEX_SCHEDULE_OPTIONS = {"allow_queueing": False, "max_concurrent_run_count": 1}
"""A missed or overlapping run is skipped, never queued to catch up; one run at a time."""


def vertex_schedule_request(schedule: Any, target: VertexTarget, cron: str) -> dict[str, Any]:
    """The CreateSchedule request ``schedule_vertex`` sends (what ``PipelineJobSchedule.create`` sets), as JSON."""
    from google.protobuf.json_format import MessageToDict

    resource = type(schedule._gca_resource)(schedule._gca_resource)  # a copy: planning never changes it
    resource.cron = vertex_cron(cron)
    resource.allow_queueing = VERTEX_SCHEDULE_OPTIONS["allow_queueing"]
    resource.max_concurrent_run_count = VERTEX_SCHEDULE_OPTIONS["max_concurrent_run_count"]
    if target.service_account:
        resource.create_pipeline_job_request.pipeline_job.service_account = target.service_account
    if target.network:
        resource.create_pipeline_job_request.pipeline_job.network = target.network
    return {"parent": schedule._parent, "schedule": MessageToDict(type(resource).pb(resource))}


def plan_vertex_schedule(
    pipeline: CompiledPipeline, target: VertexTarget, schedule: Any, cron: str, parameters: Mapping[str, Any]
) -> dict[str, Any]:
    """What ``schedule_vertex`` sends, with the (large) pipeline spec left out of the printed request."""
    request = vertex_schedule_request(schedule, target, cron)
    resource = json.loads(json.dumps(request["schedule"]))
    resource.get("createPipelineJobRequest", {}).get("pipelineJob", {}).pop("pipelineSpec", None)
    return {
        "target": "vertex-schedule",
        "project": target.project,
        "region": target.region,
        "pipeline": {"name": pipeline.name, "file": str(pipeline.path), "sha256": pipeline.sha256},
        "parameters": dict(parameters),
        "request": {**request, "schedule": resource},
    }


def schedule_vertex(schedule: Any, target: VertexTarget, cron: str) -> SubmitResult:
    """Create the schedule (one CreateSchedule call)."""
    schedule.create(
        cron=vertex_cron(cron),
        service_account=target.service_account,
        network=target.network,
        **VERTEX_SCHEDULE_OPTIONS,
    )
    return SubmitResult(run_id=str(schedule.resource_name), url=None)
