"""The error table: every type in :data:`serving.errors.STATUS` is answered with its status and a message."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from kserve.errors import (
    InferenceError,
    InvalidInput,
    ModelNotFound,
    ModelNotReady,
    ServerNotLive,
    ServerNotReady,
    UnsupportedProtocol,
)

from serving import errors
from serving.payload import PayloadError

EXAMPLES: dict[type[Exception], tuple[Exception, str]] = {
    PayloadError: (PayloadError("instances[0].V3: expected a number"), "instances[0].V3: expected a number"),
    InvalidInput: (InvalidInput("Unrecognized request format"), "Unrecognized request format"),
    RequestValidationError: (
        RequestValidationError([{"type": "missing", "loc": ("body", "inputs"), "msg": "Field required"}]),
        "invalid request body: inputs: Field required",
    ),
    errors.BodyTooLarge: (errors.BodyTooLarge("body of 99 bytes exceeds the limit"), "exceeds the limit"),
    ModelNotFound: (ModelNotFound("other"), "Model with name other does not exist."),
    ModelNotReady: (ModelNotReady("fraud-detector"), "Model with name fraud-detector is not ready."),
    ServerNotReady: (ServerNotReady(), "Server is not ready."),
    ServerNotLive: (ServerNotLive(), "Server is not live."),
    NotImplementedError: (NotImplementedError("no such verb"), "no such verb"),
    UnsupportedProtocol: (UnsupportedProtocol("v9"), "Unsupported protocol v9."),
    InferenceError: (InferenceError("booster failed"), "booster failed"),
}


def raising_app() -> FastAPI:
    app = FastAPI()

    async def fail(request: Request) -> None:
        raise request.app.state.error

    app.add_api_route("/fail", fail, methods=["POST"])
    errors.install(app)
    return app


def test_every_entry_of_the_table_is_answered_with_its_status() -> None:
    assert set(EXAMPLES) == set(errors.STATUS), "give each table entry an example here"
    app = raising_app()
    client = TestClient(app)
    for kind, status in errors.STATUS.items():
        error, message = EXAMPLES[kind]
        app.state.error = error
        response = client.post("/fail")
        assert response.status_code == status, kind
        assert message in response.json()["error"], (kind, response.text)


def test_bad_requests_are_4xx_and_only_faults_are_500() -> None:
    client_errors = (PayloadError, InvalidInput, RequestValidationError, errors.BodyTooLarge, ModelNotFound)
    assert all(400 <= errors.STATUS[kind] < 500 for kind in client_errors)
    assert errors.status_for(type("Specific", (PayloadError,), {})("x")) == 400, "subclasses inherit their entry"


def test_anything_else_is_a_500_naming_the_error_type() -> None:
    app = raising_app()
    app.state.error = RuntimeError("boom")
    response = TestClient(app, raise_server_exceptions=False).post("/fail")
    assert response.status_code == 500
    assert response.json() == {"error": "RuntimeError: boom"}
