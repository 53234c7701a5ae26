"""Which HTTP status each error gets: one table (:data:`STATUS`), one handler, used by every route.

KServe's routes (V1 predict/explain, V2 health, metadata and ready), our own V2 ``infer`` and ``/metrics``
routes and the request middleware all answer an error the same way: the status from :data:`STATUS` (found
along the error's class hierarchy) and a JSON body ``{"error": "<message naming the problem>"}``. A bad
request is a 4xx; only a fault of the server itself (anything not in the table) is a 500, and only a 500
is logged with its traceback (every answer also gets its access-log line from the middleware).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from typing import Any

import orjson
from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.responses import Response
from kserve.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
)

from serving.payload import PayloadError

log = logging.getLogger(__name__)


class BodyTooLarge(Exception):
    """A request body over ``FRAUD_MAX_BODY_BYTES`` (by its ``Content-Length``, or as it is read)."""


STATUS: dict[type[Exception], int] = {
    PayloadError: 400,  # the body breaks the serving contract (serving.payload, the V2 route, the middleware)
    InvalidInput: 400,  # KServe's decoder: a V1 body that is not JSON, NaN or infinite literals
    RequestValidationError: 400,  # FastAPI's validation of a route's parameters
    BodyTooLarge: 413,
    ModelNotFound: 404,
    ModelNotReady: 503,  # not loaded (yet): the loader keeps retrying
    ServerNotReady: 503,
    ServerNotLive: 503,
    NotImplementedError: 501,
    UnsupportedProtocol: 501,
    InferenceError: 500,
}
"""Error type -> HTTP status. Subclasses inherit their base's entry; anything else is a 500."""

INTERNAL_ERROR = 500


def status_for(error: BaseException) -> int:
    """The status of ``error``: the table entry of its nearest class, else 500."""
    for kind in type(error).__mro__:
        status = STATUS.get(kind)
        if status is not None:
            return status
    return INTERNAL_ERROR


def validation_message(errors: Sequence[Any]) -> str:
    """FastAPI's validation errors as one sentence naming the fields at fault."""
    if any(error.get("type") == "json_invalid" for error in errors):
        return "request body is not valid JSON"
    # A V2 body is validated as InferenceRequest or raw bytes: the bytes branch's complaint is noise.
    errors = [e for e in errors if "bytes" not in e.get("loc", ())] or list(errors)
    parts = []
    for error in errors[:5]:
        where = ".".join(str(p) for p in error.get("loc", ()) if p not in ("body", "InferenceRequest"))
        parts.append(f"{where or 'body'}: {error.get('msg', 'invalid')}")
    more = f" (and {len(errors) - 5} more)" if len(errors) > 5 else ""
    return "invalid request body: " + "; ".join(parts) + more


def message_for(error: BaseException) -> str:
    """The ``error`` field of the answer."""
    if isinstance(error, RequestValidationError):
        return validation_message(list(error.errors()))
    if status_for(error) == INTERNAL_ERROR and not isinstance(error, InferenceError):
        return f"{type(error).__name__}: {error}"
    return str(error) or type(error).__name__


def error_body(error: BaseException) -> bytes:
    return orjson.dumps({"error": message_for(error)})


async def handle(request: Request, error: Exception) -> Response:
    """The exception handler of every route (see :func:`install`)."""
    status = status_for(error)
    if status == INTERNAL_ERROR:  # a fault of ours: the traceback goes to the logs (the access line says the rest)
        log.error("%s %s failed: %s", request.method, request.url.path, message_for(error), exc_info=error)
    return Response(error_body(error), status_code=status, media_type="application/json")


def install(app: FastAPI) -> None:
    """Answer every error type of :data:`STATUS`, and any other exception, with :func:`handle`.

    Replaces KServe's handlers (which log every client error with a traceback) and FastAPI's 422 for
    validation errors.
    """
    for kind in STATUS:
        app.add_exception_handler(kind, handle)
    app.add_exception_handler(Exception, handle)
