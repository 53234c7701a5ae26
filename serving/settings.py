"""The model server's settings: one object per process, built by the entry point (:mod:`serving.main`), never at import.

Every field can be set from the environment with the ``FRAUD_`` prefix, e.g. ``FRAUD_MODEL_URI=gs://b/champion``.
"""

from __future__ import annotations

import argparse
import sys
from collections.abc import Callable, Mapping, Sequence
from typing import Any, Literal, TextIO, TypeVar

from pydantic import Field, ValidationError
from pydantic_core import ErrorDetails
from pydantic_settings import BaseSettings, SettingsConfigDict

from fraud_detection.features.definitions import GRACE
from fraud_detection.parsers import problem


class ServingSettings(BaseSettings):
    """What the predictor serves, where it listens, and where its traces and logs go."""

    model_config = SettingsConfigDict(env_prefix="FRAUD_", extra="ignore", use_attribute_docstrings=True)

    model_uri: str = "/mnt/models"
    """Model directory: a local path, a ``gs://`` prefix, or KServe's storage-initializer mount."""
    model_name: str = "fraud-detector"
    """The name in the endpoint paths (``/v1/models/<name>:predict``)."""
    host: str = "0.0.0.0"
    """Address to listen on."""
    port: int = Field(default=8080, ge=1, le=65535)
    """HTTP port."""
    workers: int = Field(default=1, ge=1)
    """uvicorn worker processes; each loads the model. One per pod is the KServe norm (scale with replicas)."""
    max_batch_rows: int = Field(default=10_000, ge=1)
    """Larger batches are refused with a 400."""
    max_body_bytes: int = Field(default=32 * 1024 * 1024, ge=1024)
    """Larger bodies get a 413: by ``Content-Length`` before they are read, else once they grow past it."""
    predict_threads: int = Field(default=1, ge=1)
    """XGBoost threads per prediction; 1 suits single-row traffic on a small pod."""
    load_retry_seconds: float = Field(default=10.0, ge=0.0)
    """Wait between attempts to load a missing or broken model (doubling up to 5 minutes); 0 = try once."""
    feature_store_url: str = ""
    """Raw-transaction models' entity-state store: empty = the embedded SQLite file (``feature_store_path``);
    ``redis://host:6379/0`` or ``rediss://`` (TLS) = Redis, its password in ``FRAUD_FEATURE_STORE_PASSWORD`` or in
    the file ``feature_store_password_file`` names."""
    feature_store_password_file: str = ""
    """A file holding the Redis AUTH string (a mounted Secret's key); it wins over ``FRAUD_FEATURE_STORE_PASSWORD``."""
    feature_store_ca_file: str = ""
    """With ``rediss://``: the CA file the server's certificate must chain to (Memorystore's server CA)."""
    feature_store_path: str = ""
    """The embedded store's SQLite file; empty = ``$FRAUD_HOME/features/state.db``."""
    feature_store_write: bool = True
    """Apply each scored transaction to the store (once per transaction id), so the card's next one sees it;
    false = only read (the stream applies the transactions)."""
    feature_store_grace_seconds: float = Field(default=GRACE, gt=0.0)
    """Seconds of state the store keeps beyond the features' horizon: a batch scored again (a redelivery), or read by a
    stream scorer that waits for the writer, up to this far behind the store's latest event gets the features the
    writer computed. Every process on one store must use the same value."""
    feature_store_timeout: float = Field(default=1.0, gt=0.0)
    """Seconds a Redis call may take before the request fails with a 503."""
    prediction_log_bootstrap_servers: str = ""
    """Kafka brokers (``host:port,...``) the prediction log goes to: one record per scored row; empty = no log."""
    prediction_log_topic: str = "fraud-predictions"
    """The prediction log's topic (the server does not create it)."""
    prediction_log_endpoint: Literal["default", "canary"] = "default"
    """The ``endpoint`` of this server's records: ``canary`` for a canary's pods (the shadow's are ``shadow``)."""
    prediction_log_queue_rows: int = Field(default=10_000, ge=1)
    """Records waiting to be sent, at most, in the log's queue and again in librdkafka's; beyond, they are dropped
    and counted (``fraud_prediction_log_dropped_total``)."""
    prediction_log_timeout_seconds: float = Field(default=30.0, gt=0.0)
    """How long a record may wait for the broker before it is dropped (librdkafka's ``message.timeout.ms``)."""
    inference_service: str = ""
    """The records' ``inferenceservicename``; empty = ``model_name``."""
    namespace: str = "default"
    """The records' ``namespace`` (on a cluster, the pod's: e.g. from the downward API's ``metadata.namespace``)."""
    shadow_model_uri: str = ""
    """A challenger's model directory, scored off the request path on the same rows for the prediction log only
    (endpoint ``shadow``); empty = no shadow. Needs the prediction log."""
    shadow_queue_rows: int = Field(default=10_000, ge=1)
    """Rows waiting for the shadow, at most; beyond, they are dropped and counted."""
    tracing_exporter: Literal["otlp", "console", "none"] = "none"
    """Where spans go: an OTLP/gRPC endpoint, the console, or nowhere."""
    otlp_endpoint: str = "http://127.0.0.1:4317"
    """OTLP/gRPC endpoint: a collector, or Cloud Trace's ``https://telemetry.googleapis.com:443``."""
    otlp_google_auth: bool | None = None
    """Attach Google credentials to OTLP calls; default: only for ``telemetry.googleapis.com``."""
    trace_sample_ratio: float = Field(default=1.0, ge=0.0, le=1.0)
    """Share of new traces sampled; an incoming sampled parent is always followed."""
    gcp_project: str | None = None
    """Project for the ``logging.googleapis.com/trace`` field (``projects/P/traces/ID``)."""
    log_level: str = "INFO"
    """Python log level name."""
    log_format: Literal["json", "text", "auto"] = "json"
    """json: Cloud Logging's structured JSON lines (the image's default); text: short lines for a person;
    auto: text when stdout is a terminal, JSON otherwise (what ``fraud serve`` uses)."""

    def resolved_log_format(self, stream: TextIO) -> Literal["json", "text"]:
        """``log_format`` with ``auto`` decided for ``stream``."""
        if self.log_format == "auto":
            return "text" if stream.isatty() else "json"
        return self.log_format

    def to_env(self) -> dict[str, str]:
        """The ``FRAUD_*`` variables that rebuild these settings in another process (a worker)."""
        env = {}
        for key, value in self.model_dump().items():
            if value is not None:
                env[f"FRAUD_{key.upper()}"] = str(value).lower() if isinstance(value, bool) else str(value)
        return env


FLAGS = {"tracing_exporter": "--tracing"}
"""Options not spelled after their setting (``--model-uri`` sets ``model_uri``)."""


Built = TypeVar("Built", bound=ServingSettings)


class SettingsError(ValueError):
    """Settings that do not validate; the message has one line per problem, each naming the option or the
    ``FRAUD_*`` variable it came from."""

    def __init__(self, problems: Sequence[str]) -> None:
        super().__init__("invalid settings:\n  " + "\n  ".join(problems))
        self.problems = list(problems)


def build_settings(
    kind: type[Built], options: Sequence[str], args: argparse.Namespace, fallbacks: Mapping[str, Any] | None = None
) -> Built:
    """Settings of ``kind`` from the ``options`` given in ``args``, over ``FRAUD_*`` variables, over
    ``fallbacks``, over the settings' defaults.

    Raises:
        SettingsError: a value does not validate, or the settings contradict each other.
    """
    given = {key: value for key in options if (value := getattr(args, key, None)) is not None}
    try:
        settings = kind(**given)
        unset = {key: value for key, value in (fallbacks or {}).items() if key not in settings.model_fields_set}
        return kind(**unset, **given) if unset else settings
    except ValidationError as error:
        raise SettingsError([_sourced(each, given) for each in error.errors()]) from None


def settings_or_exit(build: Callable[[], Built], prog: str) -> Built:
    """``build()``; settings that do not validate end the process with exit code 2 and ``prog: error: ...`` on
    stderr, each problem on its own line (no traceback: the message is for the person who set them)."""
    try:
        return build()
    except SettingsError as error:
        print(f"{prog}: error: {error}", file=sys.stderr)
        raise SystemExit(2) from None


def _sourced(error: ErrorDetails, given: Mapping[str, Any]) -> str:
    """One validation error worded by :func:`fraud_detection.parsers.problem`, its setting named as the option that
    gave it (``--batch-size``) or its variable (``FRAUD_BATCH_SIZE``); a rule over several settings as it is."""
    worded = problem(error)
    name = next((part for part in error["loc"] if isinstance(part, str)), None)
    if name is None:
        return worded
    source = FLAGS.get(name, "--" + name.replace("_", "-")) if name in given else f"FRAUD_{name.upper()}"
    return source + worded[len(name) :] if worded.startswith(name) else f"{source}: {worded}"
