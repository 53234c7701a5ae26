"""The prediction log: one record per scored transaction, in KServe's InferenceLogger CloudEvents form.

A record is a CloudEvent of type :data:`RESPONSE_TYPE` whose ``id`` is the transaction id and whose extensions
are KServe's: ``inferenceservicename``, ``namespace``, ``component`` and ``endpoint`` (``default``, ``canary``
or ``shadow``). Its data (:class:`Prediction`) holds what was scored and what was answered: the model version,
the features as scored, the probability, the decision and the trace id.

On Kafka a record travels in the binary content mode of the CloudEvents Kafka binding: the attributes are
``ce_``-prefixed headers, ``content-type`` is a header, the value is the JSON data and the key is the
transaction id (so every record of one transaction lands in one partition). The ``cloudevents`` SDK does the
mapping; this module adds the validation, with errors that name the attribute or field at fault.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any, Final, Literal, NamedTuple

from pydantic import BaseModel, ConfigDict, Field, ValidationError, model_validator

RESPONSE_TYPE: Final = "org.kubeflow.serving.inference.response"
"""The CloudEvent type KServe's logger gives a response; every prediction record has it."""
CONTENT_TYPE = "application/json"
IGNORED = frozenset({"datacontenttype", "partitionkey"})
"""Attributes the binding sets that the record does not keep: the content type and the key (the id again)."""
ENDPOINTS = ("default", "canary", "shadow")
Endpoint = Literal["default", "canary", "shadow"]


class RecordError(ValueError):
    """A Kafka message that is not a valid prediction record; the message names what is wrong."""


class Prediction(BaseModel):
    """The data of one record: what the model saw and what it answered."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    transaction_id: str = Field(min_length=1, max_length=256)
    model_version: str = Field(min_length=1, description="registry version of the model that scored")
    features: dict[str, float] = Field(description="the features as scored, by name")
    probability: float = Field(ge=0.0, le=1.0, description="the fraud probability the model gave")
    decision: bool = Field(description="flagged: the probability was at or above the model's threshold")
    trace_id: str = Field(default="", description="W3C trace id of the request ('' when untraced)")


class PredictionRecord(BaseModel):
    """A prediction record: the CloudEvent's attributes and KServe's extensions, with its :class:`Prediction`."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    id: str = Field(min_length=1, description="the transaction id (KServe: the request's Ce-Id)")
    source: str = Field(min_length=1, description="who scored: e.g. the InferenceService's URL or the scorer")
    time: datetime = Field(description="when the transaction was scored (timezone-aware)")
    inferenceservicename: str = Field(min_length=1)
    namespace: str = Field(min_length=1)
    component: str = Field(default="predictor", min_length=1)
    endpoint: Endpoint = "default"
    type: Literal["org.kubeflow.serving.inference.response"] = RESPONSE_TYPE
    specversion: Literal["1.0"] = "1.0"
    data: Prediction

    @model_validator(mode="after")
    def _one_id_and_a_zone(self) -> PredictionRecord:
        """The event id and the data's transaction id are one id; the time carries its zone."""
        if self.id != self.data.transaction_id:
            raise ValueError(f"event id {self.id!r} differs from data.transaction_id {self.data.transaction_id!r}")
        if self.time.tzinfo is None:
            raise ValueError("time has no timezone: give it in UTC")
        return self


def record(
    prediction: Prediction,
    *,
    inference_service: str,
    namespace: str,
    endpoint: Endpoint = "default",
    source: str = "",
    component: str = "predictor",
    time: datetime | None = None,
) -> PredictionRecord:
    """The record of ``prediction``, scored now (or at ``time``) by ``endpoint`` of ``inference_service``."""
    return PredictionRecord(
        id=prediction.transaction_id,
        source=source or f"/{namespace}/{inference_service}/{component}",
        time=time or datetime.now(UTC),
        inferenceservicename=inference_service,
        namespace=namespace,
        component=component,
        endpoint=endpoint,
        data=prediction,
    )


class KafkaMessage(NamedTuple):
    """A message as a Kafka client takes it: key, value and headers (``confluent_kafka`` takes the list)."""

    key: bytes
    value: bytes
    headers: list[tuple[str, bytes]]


def encode(item: PredictionRecord) -> KafkaMessage:
    """``item`` in the binary content mode of the CloudEvents Kafka binding, keyed by the transaction id."""
    from cloudevents.http import CloudEvent
    from cloudevents.kafka import to_binary

    attributes = item.model_dump(mode="json", exclude={"data"})
    event = CloudEvent({**attributes, "datacontenttype": CONTENT_TYPE}, item.data.model_dump(mode="json"))
    message = to_binary(event, data_marshaller=_json_bytes, key_mapper=lambda _: item.id.encode())
    headers = [
        (name, value if isinstance(value, bytes) else str(value).encode()) for name, value in message.headers.items()
    ]
    return KafkaMessage(item.id.encode(), _bytes(message.value), headers)


def decode(
    key: bytes | None, value: bytes | None, headers: list[tuple[str, bytes]] | dict[str, bytes] | None
) -> PredictionRecord:
    """The record in a Kafka message; :class:`RecordError` names the header or field that is missing or wrong."""
    from cloudevents.kafka import KafkaMessage as EventMessage
    from cloudevents.kafka import from_binary

    found = dict(headers or {})
    for attribute in ("ce_id", "ce_type", "ce_specversion", "ce_source", "ce_time"):
        if attribute not in found:
            raise RecordError(f"header {attribute} is missing: not a binary-mode CloudEvent")
    if found["ce_type"] != RESPONSE_TYPE.encode():
        raise RecordError(f"header ce_type is {found['ce_type']!r}, not {RESPONSE_TYPE!r}")
    if not value:
        raise RecordError("message value is empty: a record carries its prediction as JSON")
    try:
        event = from_binary(EventMessage(found, key, value), data_unmarshaller=_json_load)
    except Exception as error:
        raise RecordError(f"not a CloudEvent: {error}") from error
    attributes = {name: event[name] for name in event.get_attributes() if name not in IGNORED}
    try:
        return PredictionRecord.model_validate({**attributes, "data": event.data})
    except ValidationError as error:
        first = error.errors()[0]
        where = ".".join(str(part) for part in first["loc"])
        raise RecordError(f"{where}: {first['msg']} (record {found['ce_id'].decode(errors='replace')!r})") from error


def _json_bytes(data: Any) -> bytes:
    import orjson

    return orjson.dumps(data)


def _json_load(value: Any) -> Any:
    import orjson

    try:
        return orjson.loads(value)
    except orjson.JSONDecodeError as error:
        raise RecordError(f"message value is not JSON: {error}") from error


def _bytes(value: str | bytes) -> bytes:
    return value.encode() if isinstance(value, str) else value
