"""The two routes written by hand; every other route is KServe's own (see :mod:`serving.app`).

* ``POST /v2/models/{model_name}/infer`` (:func:`v2_infer`): KServe's route parses a JSON body with the
  standard-library decoder into a pydantic model and serialises the answer through FastAPI's encoder; for
  a 1,000-row tensor that is most of the request's time. This one decodes with orjson and checks the
  structure with :func:`serving.payload.parse_v2_body`, then builds the same ``InferRequest`` and goes
  through the same data plane and model. Binary tensors (``Inference-Header-Content-Length``) are decoded
  by KServe's ``InferRequest.from_bytes`` as before.
* ``GET /metrics`` (:func:`metrics`): KServe's handler always reads the process's own registry; with
  several worker processes this one adds up every worker's values (Prometheus multiprocess mode).

Both find the data plane on ``request.app.state`` (set by :func:`serving.app.create_app`).
"""

from __future__ import annotations

import os
from collections.abc import MutableMapping
from typing import Any

import orjson
from fastapi import FastAPI, Request, Response
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER, V2_ROUTE_PREFIX
from kserve.errors import InvalidInput, ModelNotReady
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

from serving import errors
from serving.payload import PayloadError, parse_v2_body
from serving.telemetry import MULTIPROC_ENV

_NUMPY_JSON = orjson.OPT_SERIALIZE_NUMPY | orjson.OPT_NON_STR_KEYS


def _binary_request(body: bytes, json_length: str, model_name: str) -> InferRequest:
    if not json_length.isdigit():
        raise PayloadError(f"{INFERENCE_CONTENT_LENGTH_HEADER} must be a byte count, got {json_length!r}")
    try:
        return InferRequest.from_bytes(body, int(json_length), model_name)
    except InvalidInput:
        raise
    except (KeyError, TypeError, ValueError, IndexError, AttributeError) as error:
        # KServe's binary decoder indexes the JSON header without checking it.
        what = f"missing field {error}" if isinstance(error, KeyError) else str(error)
        raise PayloadError(f"invalid binary V2 request: {what}") from error


def _json_request(body: bytes, model_name: str) -> InferRequest:
    try:
        decoded = orjson.loads(body)
    except orjson.JSONDecodeError as error:
        raise PayloadError(f"request body is not valid JSON: {error}") from error
    parsed = parse_v2_body(decoded)
    return InferRequest(
        model_name=model_name,
        infer_inputs=[InferInput(t.name, list(t.shape), t.datatype, t.data, {}) for t in parsed.inputs],
        request_id=parsed.request_id,
        parameters=parsed.parameters,
        request_outputs=[RequestedOutput(name, params or {}) for name, params in parsed.outputs] or None,
    )


async def v2_infer(model_name: str, request: Request) -> Response:
    """V2 inference, JSON (orjson) or binary tensors; see the module docstring."""
    dataplane = request.app.state.dataplane
    if not await dataplane.model_ready(model_name, True):
        raise ModelNotReady(model_name)
    body = await request.body()
    headers = dict(request.headers.items())
    json_length = headers.get(INFERENCE_CONTENT_LENGTH_HEADER)
    if json_length is not None:
        infer_request = _binary_request(body, json_length, model_name)
    else:
        infer_request = _json_request(body, model_name)
    response, response_headers = await dataplane.infer(model_name=model_name, request=infer_request, headers=headers)
    response, encoded_headers = dataplane.encode(
        model_name=model_name, response=response, headers=headers, req_attributes={}
    )
    response_headers.update(encoded_headers)
    response_headers.pop("content-length", None)
    if isinstance(response, bytes):
        response_headers.pop("content-type", None)
        return Response(content=response, headers=response_headers)
    content = orjson.dumps(response, option=_NUMPY_JSON)
    return Response(content=content, headers=response_headers, media_type="application/json")


async def metrics(request: Request) -> Response:
    """Prometheus text of the default registry, or of every worker's files in multiprocess mode."""
    from prometheus_client import REGISTRY, CollectorRegistry, exposition, multiprocess

    registry = REGISTRY
    if os.environ.get(MULTIPROC_ENV):
        registry = CollectorRegistry()
        multiprocess.MultiProcessCollector(registry)
    encoder, content_type = exposition.choose_encoder(request.headers.get("accept", ""))
    return Response(content=encoder(registry), headers={"content-type": content_type})


class V1Predict:
    """``POST /v1/models/<model_name>:predict`` as a bare ASGI endpoint: KServe's own handler
    (``V1Endpoints.predict``) step for step, without FastAPI's routing, dependency solving and request object.

    The same data plane calls (``model_ready``, ``decode`` with its CloudEvents handling, ``infer`` through
    ``Model.__call__`` and its latency histograms, ``encode``), the same answer (orjson, as KServe's
    ``ORJSONResponse`` renders it) and the same error table (:mod:`serving.errors`). :class:`serving.app.FraudApp`
    routes the single-prediction paths here; one request's routing in FastAPI cost about as much as its scoring.
    """

    def __init__(self, dataplane: Any, model_name: str) -> None:
        self.dataplane = dataplane
        self.model_name = model_name

    async def _answer(self, scope: MutableMapping[str, Any], receive: Any) -> tuple[int, dict[str, str], bytes]:
        dataplane, model_name = self.dataplane, self.model_name
        if not await dataplane.model_ready(model_name, True):
            raise ModelNotReady(model_name)
        chunks = []
        while True:
            message = await receive()
            if message["type"] != "http.request":
                break
            chunks.append(message.get("body", b""))
            if not message.get("more_body", False):
                break
        body = chunks[0] if len(chunks) == 1 else b"".join(chunks)
        headers = {key.decode("latin-1"): value.decode("latin-1") for key, value in scope["headers"]}
        infer_request, attributes = dataplane.decode(body=body, headers=headers)
        response, response_headers = await dataplane.infer(
            model_name=model_name, request=infer_request, headers=headers
        )
        response, encoded_headers = dataplane.encode(
            model_name=model_name, response=response, headers=headers, req_attributes=attributes
        )
        response_headers.update(encoded_headers)
        response_headers.pop("content-length", None)
        if isinstance(response, bytes | str):
            return 200, response_headers, response.encode() if isinstance(response, str) else response
        response_headers.setdefault("content-type", "application/json")
        return 200, response_headers, orjson.dumps(response, option=_NUMPY_JSON)

    async def __call__(self, scope: MutableMapping[str, Any], receive: Any, send: Any) -> None:
        try:
            status, headers, content = await self._answer(scope, receive)
        except Exception as error:  # the error table's answer, as errors.handle gives it on the FastAPI routes
            status, content = errors.status_for(error), errors.error_body(error)
            headers = {"content-type": "application/json"}
            if status == errors.INTERNAL_ERROR:
                errors.log.error("POST %s failed: %s", scope["path"], errors.message_for(error), exc_info=error)
        raw = [(b"content-length", str(len(content)).encode())]
        raw += [(key.lower().encode("latin-1"), value.encode("latin-1")) for key, value in headers.items()]
        await send({"type": "http.response.start", "status": status, "headers": raw})
        await send({"type": "http.response.body", "body": content})


def register(app: FastAPI) -> None:
    """Add both routes; call before KServe's routes are registered, so these answer first."""
    app.add_api_route(f"{V2_ROUTE_PREFIX}/models/{{model_name}}/infer", v2_infer, methods=["POST"])
    app.add_api_route("/metrics", metrics, methods=["GET"])
