"""The controller: Alertmanager's webhook receiver, which acts on alerts (retrain, roll back).

    python -m monitor.controller --token-file /etc/fraud/controller-token --serving-root .fraud/serving \\
        --retrain-command "fraud run" --state .fraud/monitor/controller.sqlite --port 9200

``POST /alerts`` takes Alertmanager's webhook body (version 4). Only Alertmanager may call it: it sends
``Authorization: Bearer <token>`` from its ``http_config.authorization.credentials_file``, and the controller
reads the same token from ``--token-file``. No token gets 401, a wrong one 403; either changes nothing and is
logged with the caller's address. By alert name (each set is an option):

* drift or decay (``--retrain-alerts``): start exactly one retraining run (:class:`monitor.actions.RetrainLease`);
* the newest version's live performance dropped (``--rollback-alerts``, the alert carries ``model_version``):
  move the champion back by compare-and-set (:func:`monitor.actions.rollback`);
* a shadow challenger wins with confidence (``--promote-alerts``, the alert carries ``champion_version`` and
  ``challenger_version``): promote it through the promotion's gates on the live pairs (:func:`monitor.promote.promote`).

Every option is also a ``FRAUD_*`` variable (:class:`monitor.settings.ControllerSettings`).
"""

from __future__ import annotations

import argparse
import hmac
import logging
import shlex
from collections.abc import Sequence
from datetime import timedelta
from pathlib import Path
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from starlette.applications import Starlette
from starlette.requests import Request
from starlette.responses import JSONResponse, PlainTextResponse
from starlette.routing import Route

from monitor.actions import CommandRun, RetrainLease, RetrainRequest, Run, rollback
from monitor.options import add_options, build
from monitor.promote import promote
from monitor.settings import ControllerSettings

log = logging.getLogger("monitor.controller")


class Alert(BaseModel):
    """One alert of a webhook body."""

    model_config = ConfigDict(extra="ignore")

    status: Literal["firing", "resolved"]
    labels: dict[str, str] = Field(default_factory=dict)
    annotations: dict[str, str] = Field(default_factory=dict)
    fingerprint: str = ""


class Notification(BaseModel):
    """Alertmanager's webhook body, version 4 (the fields the controller reads)."""

    model_config = ConfigDict(extra="ignore")

    version: Literal["4"]
    groupKey: str = Field(min_length=1)  # Alertmanager's field name
    status: Literal["firing", "resolved"]
    receiver: str = ""
    alerts: list[Alert]


def read_token(path: Path) -> str:
    """The token in ``path`` (surrounding whitespace dropped); refuses an empty one."""
    token = path.read_text().strip()
    if not token:
        raise ValueError(f"{path} is empty: the controller will not accept calls without a token")
    return token


def _refused(request: Request, token: str) -> PlainTextResponse | None:
    """401 without a bearer token, 403 with a wrong one (each logged), None when the token is right."""
    given = request.headers.get("authorization", "")
    caller = request.client.host if request.client else "unknown"
    scheme, _, credentials = given.partition(" ")
    if scheme.lower() != "bearer" or not credentials:
        log.warning("refused %s %s from %s: no bearer token", request.method, request.url.path, caller)
        return PlainTextResponse("a bearer token is required", 401, headers={"WWW-Authenticate": "Bearer"})
    if not hmac.compare_digest(credentials.strip().encode(), token.encode()):
        log.warning("refused %s %s from %s: wrong bearer token", request.method, request.url.path, caller)
        return PlainTextResponse("wrong bearer token", 403)
    return None


def handle(
    notification: Notification, settings: ControllerSettings, lease: RetrainLease, run: Run
) -> list[dict[str, str]]:
    """The actions one notification calls for, done; returns one line per action."""
    done: list[dict[str, str]] = []
    retrain, back, to_promote = (settings.names(f) for f in ("retrain_alerts", "rollback_alerts", "promote_alerts"))
    firing = [alert for alert in notification.alerts if alert.status == "firing"]
    wanting_run = sorted({a.labels.get("alertname", "") for a in firing} & retrain)
    if wanting_run:
        outcome = lease.start_once(RetrainRequest(notification.groupKey, tuple(wanting_run)), run)
        done.append({"action": "retrain", "alerts": ",".join(wanting_run), "outcome": outcome})
    elif notification.status == "resolved" and {a.labels.get("alertname", "") for a in notification.alerts} & retrain:
        lease.resolved(notification.groupKey)
        done.append({"action": "retrain", "outcome": "group resolved: a later firing may retrain"})
    for alert in firing:
        name = alert.labels.get("alertname", "")
        if name in back:
            version = alert.labels.get("model_version")
            outcome = rollback(settings.serving_root, version) if version else "the alert has no model_version label"
            done.append({"action": "rollback", "alert": name, "outcome": outcome})
        elif name in to_promote:
            versions = alert.labels.get("champion_version"), alert.labels.get("challenger_version")
            outcome = (
                promote(settings, versions[0], versions[1])
                if versions[0] and versions[1]
                else "the alert has no champion_version and challenger_version labels"
            )
            done.append({"action": "promote", "alert": name, "outcome": outcome})
    return done


def app(settings: ControllerSettings, run: Run | None = None) -> Starlette:
    """The ASGI app: ``POST /alerts`` (bearer token) and ``GET /healthz``; ``run`` defaults to the command."""
    token = read_token(settings.token_file)
    lease = RetrainLease(settings.state, timedelta(hours=settings.lease_hours))
    start = run or CommandRun(shlex.split(settings.retrain_command), settings.state.parent / "retrain-logs")

    async def alerts(request: Request) -> JSONResponse | PlainTextResponse:
        refused = _refused(request, token)
        if refused is not None:
            return refused
        try:
            notification = Notification.model_validate_json(await request.body())
        except ValidationError as error:
            first = error.errors()[0]
            where = ".".join(str(part) for part in first["loc"]) or "body"
            return PlainTextResponse(f"not an Alertmanager webhook (version 4): {where}: {first['msg']}", 400)
        from starlette.concurrency import run_in_threadpool

        done = await run_in_threadpool(handle, notification, settings, lease, start)
        log.info("alert group %s (%s): %s", notification.groupKey, notification.status, done)
        return JSONResponse({"actions": done})

    async def healthz(_: Request) -> PlainTextResponse:
        return PlainTextResponse("ok")

    return Starlette(routes=[Route("/alerts", alerts, methods=["POST"]), Route("/healthz", healthz)])


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m monitor.controller", description=__doc__.splitlines()[0])
    add_options(parser, ControllerSettings)
    return parser


def serve(settings: ControllerSettings) -> int:
    """Serve the controller until stopped."""
    import uvicorn

    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(name)s %(message)s")
    uvicorn.run(app(settings), host=settings.host, port=settings.port, log_level="info")
    return 0


def main(argv: Sequence[str] | None = None) -> int:
    """Entry point of ``python -m monitor.controller`` (``fraud monitor controller`` wraps it): serve until
    stopped."""
    parser = _parser()
    return serve(build(ControllerSettings, parser.parse_args(argv), parser))


if __name__ == "__main__":
    raise SystemExit(main())
