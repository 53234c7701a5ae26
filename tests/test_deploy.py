"""The exact InferenceService bodies the deploy step sends, checked like the committed manifests."""

from __future__ import annotations

import copy

import pytest

from ops import deploy
from tests.cluster import checks

URI = "gs://acme-models/serving/v7"
IMAGE = "europe-docker.pkg.dev/acme/fraud/serving:0.1.0"


def live(canary: int | None = None) -> dict:
    """A live object as the API server returns it: created by kustomize, with metadata and status."""
    body = deploy.new_inference_service("fraud-champion", "fraud", "gs://acme-models/serving/v6", IMAGE)
    body["metadata"].update({"resourceVersion": "4711", "uid": "abc", "generation": 3})
    body["status"] = {"url": "http://fraud-champion.fraud.example.com"}
    if canary is not None:
        body["spec"]["predictor"]["canaryTrafficPercent"] = canary
    return body


def env(body: dict) -> dict[str, str]:
    container = body["spec"]["predictor"]["containers"][0]
    return {e["name"]: e["value"] for e in container["env"]}


def test_new_inference_service_passes_the_manifest_checks():
    body = deploy.new_inference_service("fraud-champion", "fraud", URI, IMAGE)
    checks.check_inference_service(body)
    assert checks.security_problems([body]) == []
    assert env(body)["STORAGE_URI"] == URI


def test_update_changes_only_the_storage_uri():
    before = live()
    after = deploy.updated_inference_service(before, URI)
    expected = copy.deepcopy(before)
    expected.pop("status")
    next(e for e in expected["spec"]["predictor"]["containers"][0]["env"] if e["name"] == "STORAGE_URI")["value"] = URI
    assert after == expected
    assert after["metadata"]["resourceVersion"] == "4711"  # optimistic concurrency: a stale replace is refused
    assert env(before)["STORAGE_URI"] == "gs://acme-models/serving/v6"  # the input is not modified
    checks.check_inference_service(after)


def test_canary_percent_is_set_and_cleared():
    canary = deploy.updated_inference_service(live(), URI, canary_traffic_percent=10)
    assert canary["spec"]["predictor"]["canaryTrafficPercent"] == 10
    full = deploy.updated_inference_service(live(canary=10), URI, canary_traffic_percent=0)
    assert "canaryTrafficPercent" not in full["spec"]["predictor"]


@pytest.mark.parametrize(
    "uri, canary, message",
    [("", 0, "storage_uri is empty"), (URI, 101, "canary_traffic_percent must be within 0..100")],
)
def test_bad_arguments_are_refused(uri, canary, message):
    with pytest.raises(ValueError, match=message):
        deploy.updated_inference_service(live(), uri, canary)


def test_an_inference_service_without_our_container_is_refused():
    body = live()
    body["spec"]["predictor"]["containers"][0]["name"] = "other"
    with pytest.raises(ValueError, match="has no 'kserve-container' container"):
        deploy.updated_inference_service(body, URI)
