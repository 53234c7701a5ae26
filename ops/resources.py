"""The Kubernetes custom resources the project creates, each named once (group, version, plural, kind)."""

from __future__ import annotations

from dataclasses import dataclass


@dataclass(frozen=True)
class CustomResource:
    """A custom resource type as the Kubernetes API addresses it."""

    group: str
    version: str
    plural: str
    kind: str

    @property
    def api_version(self) -> str:
        """The ``apiVersion`` of an object of this type (``serving.kserve.io/v1beta1``)."""
        return f"{self.group}/{self.version}"

    def where(self, namespace: str) -> tuple[str, str, str, str]:
        """``group, version, namespace, plural``: the leading arguments of ``CustomObjectsApi``'s namespaced calls."""
        return self.group, self.version, namespace, self.plural


INFERENCE_SERVICE = CustomResource("serving.kserve.io", "v1beta1", "inferenceservices", "InferenceService")
"""KServe's InferenceService: the champion's deployment."""

KATIB_EXPERIMENT = CustomResource("kubeflow.org", "v1beta1", "experiments", "Experiment")
"""Katib's Experiment: a hyperparameter search on the cluster."""

KSERVE_CONTAINER = "kserve-container"
"""The predictor container's name in an InferenceService (KServe's convention; log queries filter on it)."""
