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

import orjson
from fastapi import FastAPI, Request, Response
from kserve.constants.constants import INFERENCE_CONTENT_LENGTH_HEADER, V2_ROUTE_PREFIX
from kserve.errors import InvalidInput, ModelNotReady
from kserve.protocol.infer_type import InferInput, InferRequest, RequestedOutput

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


def register(app: FastAPI) -> None:
    """Add both routes; call before KServe's routes are registered, so these answer first."""
    app.add_api_route(f"{V2_ROUTE_PREFIX}/models/{{model_name}}/infer", v2_infer, methods=["POST"])
    app.add_api_route("/metrics", metrics, methods=["GET"])
