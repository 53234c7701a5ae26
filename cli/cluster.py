"""``fraud submit`` and ``fraud logs``: the command-line glue over submit.py and logquery.py.

Register them with :func:`add_submit_parser` and :func:`add_logs_parser` on the ``fraud`` subparsers. Handlers
take ``(args, settings=None)`` and return an exit code. Secrets never come from flags: a KFP token or cookie
is read from an environment variable (``KFP_TOKEN`` / ``KFP_COOKIES`` by default), or an IAP ID token is
minted from Application Default Credentials with ``--iap-audience``.
"""

from __future__ import annotations

import argparse
import dataclasses
import json
import os
import sys
from typing import TYPE_CHECKING, Any, TextIO, TypeVar

from cli.common import command
from components import COMPONENTS_IMAGE
from fraud_detection import config
from ops import logquery, submit

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

DEFAULT_PIPELINE = "pipelines/fraud_pipeline.yaml"


def add_submit_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``fraud submit {kfp,vertex,katib}``."""
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "submit",
        help="submit the compiled pipeline to Kubeflow Pipelines or Vertex AI Pipelines",
        description="Submit a compiled pipeline. --dry-run prints exactly what would be sent and sends nothing.",
    )
    targets = parser.add_subparsers(dest="submit_target", required=True, metavar="TARGET")

    common = argparse.ArgumentParser(add_help=False)
    common.add_argument("pipeline", nargs="?", default=DEFAULT_PIPELINE, help="compiled pipeline YAML")
    common.add_argument(
        "--param",
        action="append",
        default=[],
        metavar="NAME=VALUE",
        help="pipeline parameter (repeatable), parsed as `fraud run` parses its option: a list as comma-separated "
        "values or a JSON list; a boolean as 1/0, true/false, yes/no or on/off",
    )
    common.add_argument("--params-file", metavar="JSON", help="JSON object of parameters (--param wins)")
    common.add_argument("--run-name", default="fraud-detection", help="run display name")
    common.add_argument("--pipeline-root", help="where task artifacts go (gs:// for Vertex)")
    common.add_argument("--no-cache", action="store_true", help="disable step caching for this run")
    common.add_argument("--dry-run", action="store_true", help="print the request as JSON, send nothing")
    common.add_argument("--wait", action="store_true", help="block until the run ends (exit 1 unless it succeeded)")
    common.add_argument("--timeout", type=int, default=6 * 3600, help="seconds to wait with --wait")
    common.add_argument(
        "--schedule",
        metavar="CRON",
        help="create a recurring run instead of one run, e.g. '0 3 * * *' (daily at 03:00); KFP: on the pipeline's "
        "latest version, no catch-up; Vertex: a schedule, missed runs skipped",
    )

    def pipeline_target(name: str, help: str) -> argparse.ArgumentParser:
        """A target that submits the compiled pipeline: the common options, then its own."""
        target = command(targets, name, parents=[common], help=help)
        target.set_defaults(handler=submit_command)
        return target

    kfp_parser = pipeline_target("kfp", "a Kubeflow Pipelines API (e.g. KFP on GKE)")
    kfp_parser.add_argument("--host", required=True, help="KFP API URL, e.g. https://kfp.example.com/pipeline")
    kfp_parser.add_argument("--namespace", default="kubeflow", help="Kubernetes namespace of the run")
    kfp_parser.add_argument("--experiment", default="fraud-detection", help="experiment (created if missing)")
    kfp_parser.add_argument("--service-account", help="Kubernetes service account the pipeline pods run as")
    kfp_parser.add_argument("--token-env", default="KFP_TOKEN", help="env var holding a bearer token, if set")
    kfp_parser.add_argument("--cookies-env", default="KFP_COOKIES", help="env var holding Dex session cookies")
    kfp_parser.add_argument(
        "--iap-audience", help="mint a Google ID token for this IAP OAuth client id (Application Default Credentials)"
    )
    kfp_parser.add_argument("--ssl-ca-cert", help="CA bundle for a private endpoint")

    vertex_parser = pipeline_target("vertex", "Vertex AI Pipelines")
    vertex_parser.add_argument("--project", required=True, help="Google Cloud project id")
    vertex_parser.add_argument("--region", required=True, help="Vertex AI region, e.g. europe-west4")
    vertex_parser.add_argument("--service-account", help="Google service account the run uses")
    vertex_parser.add_argument("--job-id", help="run id (default: pipeline name + timestamp)")
    vertex_parser.add_argument("--label", action="append", default=[], metavar="KEY=VALUE", help="run label")
    vertex_parser.add_argument("--network", help="VPC network to peer, projects/N/global/networks/NAME")

    katib_parser = command(
        targets,
        "katib",
        help="a Katib Experiment tuning one family's search space on a cluster (docs/tuning.md)",
    )
    katib_parser.add_argument("--family", required=True, choices=["xgboost", "mlp"], help="family to tune")
    katib_parser.add_argument("--train-data", required=True, help="training window's path in the trial pods")
    katib_parser.add_argument("--validation-data", required=True, help="validation window's path in the trial pods")
    katib_parser.add_argument("--name", help="experiment name (default: fraud-tune-<family>)")
    katib_parser.add_argument("--namespace", default="kubeflow", help="namespace of the experiment")
    katib_parser.add_argument("--image", default=COMPONENTS_IMAGE, help="image the trials run")
    katib_parser.add_argument("--trials", type=int, default=30, help="most trials (maxTrialCount)")
    katib_parser.add_argument("--parallel", type=int, default=3, help="trials at once (parallelTrialCount)")
    katib_parser.add_argument("--seed", type=int, default=42, help="TPE's random_state and the training seed")
    katib_parser.add_argument("--data-version", default="", help="the windows' data version, recorded by each trial")
    katib_parser.add_argument("--dry-run", action="store_true", help="print the request as JSON, send nothing")
    katib_parser.set_defaults(handler=katib_command)
    return parser


def katib_command(args: argparse.Namespace, settings: Any = None, out: TextIO | None = None) -> int:
    """Handler of ``fraud submit katib``: render and validate the Experiment, then print (dry run) or create it."""
    from fraud_detection.tuning.study import TUNABLE
    from ops import katib

    out = out or sys.stdout
    target = _target(katib.KatibTarget, args, name=args.name or f"fraud-tune-{args.family}")
    try:
        experiment = katib.experiment(TUNABLE[args.family].space, target)
    except ValueError as exc:
        print(f"fraud submit: {exc}", file=sys.stderr)
        return 2
    katib.validate(experiment)
    if args.dry_run:
        _print_json(katib.plan(experiment), out)
        return 0
    created = katib.submit(experiment)
    _print_json({"name": created["metadata"]["name"], "namespace": created["metadata"]["namespace"]}, out)
    return 0


def _print_json(data: Any, out: TextIO) -> None:
    out.write(json.dumps(data, indent=2, sort_keys=False, default=str) + "\n")


Target = TypeVar("Target", bound="DataclassInstance")
"""A submission target dataclass (KfpTarget, VertexTarget, KatibTarget)."""


def _target(kind: type[Target], args: argparse.Namespace, **derived: Any) -> Target:
    """A ``kind`` target: each field from the option of the same name (every field has one), but those
    ``derived`` here from other options or the environment."""
    given = {f.name: getattr(args, f.name) for f in dataclasses.fields(kind) if f.name not in derived}
    return kind(**given, **derived)


def _kfp_target(args: argparse.Namespace) -> submit.KfpTarget:
    token = os.environ.get(args.token_env) or None
    if args.iap_audience:
        from google.auth.transport.requests import Request
        from google.oauth2 import id_token

        token = id_token.fetch_id_token(Request(), args.iap_audience)
    return _target(
        submit.KfpTarget,
        args,
        enable_caching=False if args.no_cache else None,
        token=token,
        cookies=os.environ.get(args.cookies_env) or None,
    )


def _vertex_target(args: argparse.Namespace) -> submit.VertexTarget:
    labels = submit.parse_param_pairs(args.label) if args.label else {}
    return _target(
        submit.VertexTarget,
        args,
        pipeline_root=args.pipeline_root or "",
        enable_caching=False if args.no_cache else None,
        labels=labels,
    )


def submit_command(args: argparse.Namespace, settings: Any = None, out: TextIO | None = None) -> int:
    """Handler of ``fraud submit``: check everything locally, then print (dry run) or send."""
    out = out or sys.stdout
    try:
        pipeline = submit.read_pipeline(args.pipeline)
        file_values = submit.read_param_file(args.params_file) if args.params_file else None
        parameters = submit.resolve_parameters(pipeline, submit.parse_param_pairs(args.param), file_values)
        if set(pipeline.parameters) == set(config.defaults()):
            # This project's pipeline: the knobs parse and check the values as `fraud run` does (its lists'
            # items are numbers, a value out of bounds or two knobs that disagree are refused) before anything
            # is sent.
            checked = config.check_parameters(parameters)
            parameters = {name: checked[name] for name in parameters}
        if args.schedule and args.wait:
            raise submit.SubmitError("--wait has no meaning with --schedule (a schedule starts runs later)")
        if args.submit_target == "kfp":
            kfp_target = _kfp_target(args)
            if args.schedule:
                if args.dry_run:
                    _print_json(submit.plan_kfp_schedule(pipeline, kfp_target, args.schedule, parameters), out)
                    return 0
                result = submit.schedule_kfp(pipeline, kfp_target, args.schedule, parameters)
            elif args.dry_run:
                _print_json(submit.plan_kfp(pipeline, kfp_target, parameters), out)
                return 0
            else:
                result = submit.submit_kfp(pipeline, kfp_target, parameters, wait=args.wait, timeout_s=args.timeout)
        else:
            vertex_target = _vertex_target(args)
            credentials = None
            if args.dry_run:
                from google.auth.credentials import AnonymousCredentials

                credentials = AnonymousCredentials()  # building the job offline needs no real credentials
            if args.schedule:
                submit.vertex_cron(args.schedule)  # refuse a bad expression before the slow import
            job = submit.build_vertex_job(pipeline, vertex_target, parameters, credentials=credentials)
            if args.schedule:
                schedule = submit.build_vertex_schedule(job, vertex_target, credentials=credentials)
                if args.dry_run:
                    plan = submit.plan_vertex_schedule(pipeline, vertex_target, schedule, args.schedule, parameters)
                    _print_json(plan, out)
                    return 0
                result = submit.schedule_vertex(schedule, vertex_target, args.schedule)
            elif args.dry_run:
                _print_json(submit.plan_vertex(pipeline, vertex_target, job, parameters), out)
                return 0
            else:
                result = submit.submit_vertex(job, vertex_target, wait=args.wait)
    except (submit.SubmitError, config.ConfigError) as exc:
        print(f"fraud submit: {exc}", file=sys.stderr)
        return 2
    _print_json({"run_id": result.run_id, "url": result.url, "state": result.state}, out)
    if args.wait and result.state not in {"SUCCEEDED", "PIPELINE_STATE_SUCCEEDED"}:
        return 1
    return 0


def add_logs_parser(subparsers: Any) -> argparse.ArgumentParser:
    """Register ``fraud logs NAME [VALUE]``."""
    listing = "\n".join(
        f"  {q.name}{' ' + q.argument if q.argument else ''}: {q.help}" for q in logquery.QUERIES.values()
    )
    parser: argparse.ArgumentParser = subparsers.add_parser(
        "logs",
        help="print (and with --fetch, run) a named Cloud Logging query over the model server's logs",
        description="Named queries:\n" + listing,
        formatter_class=argparse.RawDescriptionHelpFormatter,
    )
    parser.add_argument("query", choices=list(logquery.QUERIES), metavar="NAME", help="query name (see above)")
    parser.add_argument("value", nargs="?", help="the query's argument (request id, trace id, version, ms)")
    parser.add_argument("--project", help="Google Cloud project (needed for --fetch and trace ids)")
    parser.add_argument("--since", default="1h", help="time window: 30m, 2h, 7d or an ISO-8601 time (default 1h)")
    parser.add_argument("--namespace", default=logquery.DEFAULT_NAMESPACE, help="namespace of the server")
    parser.add_argument("--fetch", action="store_true", help="run the query with google-cloud-logging")
    parser.add_argument("--limit", type=int, default=50, help="at most this many entries with --fetch")
    parser.set_defaults(handler=logs_command)
    return parser


def logs_command(args: argparse.Namespace, settings: Any = None, out: TextIO | None = None) -> int:
    """Handler of ``fraud logs``: print the filter; with ``--fetch``, print matching entries as JSON lines."""
    out = out or sys.stdout
    try:
        since = logquery.parse_since(args.since) if args.since else None
        filter_ = logquery.build_filter(
            args.query, args.value, project=args.project, since=since, namespace=args.namespace
        )
    except logquery.QueryError as exc:
        print(f"fraud logs: {exc}", file=sys.stderr)
        return 2
    if not args.fetch:
        out.write(filter_ + "\n")
        return 0
    if not args.project:
        print("fraud logs: --fetch needs --project", file=sys.stderr)
        return 2
    import google.api_core.exceptions
    import google.auth.exceptions

    try:
        entries = logquery.fetch(filter_, args.project, limit=args.limit)
    except google.api_core.exceptions.GoogleAPICallError as exc:
        print(f"fraud logs: Cloud Logging refused the query: {exc.message}", file=sys.stderr)
        return 1
    except google.auth.exceptions.DefaultCredentialsError as exc:
        print(
            f"fraud logs: no Google credentials ({exc}); run `gcloud auth application-default login`", file=sys.stderr
        )
        return 2
    for entry in entries:
        out.write(json.dumps(entry, default=str) + "\n")
    return 0
