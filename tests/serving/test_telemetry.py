"""Exporter choice: Cloud Trace's OTLP endpoint gets Google credentials, a collector gets plain gRPC."""

from __future__ import annotations

from typing import Any

import pytest

from serving.settings import ServingSettings
from serving.telemetry import _otlp_exporter


def test_collector_endpoint_is_plain_grpc() -> None:
    exporter = _otlp_exporter(ServingSettings(tracing_exporter="otlp", otlp_endpoint="http://127.0.0.1:4317"))
    assert exporter._endpoint == "127.0.0.1:4317"
    assert exporter._credentials is None
    exporter.shutdown()


def test_cloud_trace_endpoint_uses_application_default_credentials(monkeypatch: pytest.MonkeyPatch) -> None:
    """Google's auth cannot run here: check the exact credentials request and the headers sent."""
    import google.auth
    from google.auth.credentials import AnonymousCredentials

    asked: dict[str, Any] = {}

    def fake_default(scopes: list[str] | None = None, **_: Any) -> tuple[Any, str]:
        asked["scopes"] = scopes
        return AnonymousCredentials(), "p"

    monkeypatch.setattr(google.auth, "default", fake_default)
    settings = ServingSettings(
        tracing_exporter="otlp", otlp_endpoint="https://telemetry.googleapis.com:443", gcp_project="my-project"
    )
    exporter = _otlp_exporter(settings)
    assert asked["scopes"] == ["https://www.googleapis.com/auth/cloud-platform"]
    assert exporter._endpoint == "telemetry.googleapis.com:443"
    assert exporter._credentials is not None
    assert ("x-goog-user-project", "my-project") in exporter._headers
    exporter.shutdown()


@pytest.mark.parametrize("n_values", [1, 3, 16, 17, 200, 1000])
def test_observing_a_few_scores_at_once_equals_one_at_a_time(n_values: int) -> None:
    """A request's few scores take a plain loop, larger batches numpy: both must count like ``observe``."""
    import numpy as np
    from prometheus_client import CollectorRegistry, Histogram, generate_latest

    from serving.telemetry import SCORE_BUCKETS, observe_many

    values = np.random.default_rng(n_values).random(n_values).astype(np.float32)
    values[: min(n_values, 3)] = [0.0, 0.1, 1.0][: min(n_values, 3)]  # on bucket bounds
    registries = CollectorRegistry(), CollectorRegistry()
    one, bulk = (Histogram("s", "s", buckets=SCORE_BUCKETS, registry=r) for r in registries)
    for value in values.tolist():
        one.observe(value)
    observe_many(bulk, values)
    lines = [[line for line in generate_latest(r).decode().splitlines() if "_created" not in line] for r in registries]
    assert lines[0] == lines[1]
