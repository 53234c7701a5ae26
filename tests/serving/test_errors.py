"""The error table: every type in :data:`serving.errors.STATUS` is answered with its status and a message."""

from __future__ import annotations

from fastapi import FastAPI, Request
from fastapi.exceptions import RequestValidationError
from fastapi.testclient import TestClient
from kserve import errors as kserve

from serving import errors
from serving.payload import PayloadError

EXAMPLES: list[tuple[Exception, str]] = [
    (PayloadError("instances[0].V3: expected a number"), "instances[0].V3: expected a number"),
    (kserve.InvalidInput("Unrecognized request format"), "Unrecognized request format"),
    (
        RequestValidationError([{"type": "missing", "loc": ("body", "inputs"), "msg": "Field required"}]),
        "invalid request body: inputs: Field required",
    ),
    (errors.BodyTooLarge("body of 99 bytes exceeds the limit"), "exceeds the limit"),
    (kserve.ModelNotFound("other"), "Model with name other does not exist."),
    (kserve.ModelNotReady("fraud-detector"), "Model with name fraud-detector is not ready."),
    (kserve.ServerNotReady(), "Server is not ready."),
    (kserve.ServerNotLive(), "Server is not live."),
    (NotImplementedError("no such verb"), "no such verb"),
    (kserve.UnsupportedProtocol("v9"), "Unsupported protocol v9."),
    (kserve.InferenceError("booster failed"), "booster failed"),
]
"""An error of each type of the table, and what its answer's message must contain."""


def raising_app() -> FastAPI:
    app = FastAPI()

    async def fail(request: Request) -> None:
        raise request.app.state.error

    app.add_api_route("/fail", fail, methods=["POST"])
    errors.install(app)
    return app


def test_every_entry_of_the_table_is_answered_with_its_status() -> None:
    examples = {type(error): (error, message) for error, message in EXAMPLES}
    assert set(examples) == set(errors.STATUS), "give each table entry an example here"
    app = raising_app()
    client = TestClient(app)
    for kind, status in errors.STATUS.items():
        error, message = examples[kind]
        app.state.error = error
        response = client.post("/fail")
        assert response.status_code == status, kind
        assert message in response.json()["error"], (kind, response.text)


def test_bad_requests_are_4xx_and_only_faults_are_500() -> None:
    client_errors = (
        PayloadError,
        kserve.InvalidInput,
        RequestValidationError,
        errors.BodyTooLarge,
        kserve.ModelNotFound,
    )
    assert all(400 <= errors.STATUS[kind] < 500 for kind in client_errors)
    assert errors.status_for(type("Specific", (PayloadError,), {})("x")) == 400, "subclasses inherit their entry"


def test_anything_else_is_a_500_naming_the_error_type() -> None:
    app = raising_app()
    app.state.error = RuntimeError("boom")
    response = TestClient(app, raise_server_exceptions=False).post("/fail")
    assert response.status_code == 500
    assert response.json() == {"error": "RuntimeError: boom"}
