"""A family's search space as a Katib ``Experiment`` (kubeflow.org/v1beta1), checked against Katib's schema,
and its submission through the Kubernetes API.

The trial template is a batch ``Job`` running the components image's train-family step for one trial
(:mod:`fraud_detection.tuning.trial`) with the trial's values as arguments; Katib's StdOut collector reads the
``validation-auprc=<value>`` line it prints. Katib has no conditional parameters: every parameter is sampled, and
the trial ignores those whose condition fails. Pure library: ``fraud submit katib`` (cli/cluster.py) builds the
arguments.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import yaml

from fraud_detection.tuning.space import Parameter, SearchSpace
from fraud_detection.tuning.trial import OBJECTIVE
from ops.resources import KATIB_EXPERIMENT

SCHEMAS = Path(__file__).parent / "schemas" / "katib"
"""Katib's vendored CRD and OpenAPI definitions (see SOURCE.md there)."""

CONTAINER = "training-container"
_KINDS = {"float": "double", "int": "int", "categorical": "categorical"}


@dataclass(frozen=True)
class KatibTarget:
    """Where and how the experiment runs: its name and namespace, the image and the mounted windows."""

    name: str
    namespace: str
    image: str
    train_data: str
    validation_data: str
    trials: int
    parallel: int
    seed: int = 42
    data_version: str = ""


def _parameter(p: Parameter) -> dict[str, Any]:
    if p.kind == "categorical":
        space: dict[str, Any] = {"list": [str(c) for c in p.choices]}
    else:
        number = (lambda v: str(int(v))) if p.kind == "int" else (lambda v: repr(float(v)))
        space = {
            "min": number(p.low),
            "max": number(p.high),
            "distribution": "logUniform" if p.log else "uniform",
        }
    return {"name": p.name, "parameterType": _KINDS[p.kind], "feasibleSpace": space}


def trial_args(space: SearchSpace, target: KatibTarget) -> list[str]:
    """The trial container's arguments, Katib's ``${trialParameters.<name>}`` placeholders in the values."""
    fixed = [
        f"--family={space.family}",
        f"--train-data={target.train_data}",
        f"--validation-data={target.validation_data}",
        "--model-dir=/tmp/model",
        f"--data-version={target.data_version}",
        f"--seed={target.seed}",
    ]
    return fixed + [f"--{p.name}=${{trialParameters.{p.name}}}" for p in space.parameters]


def experiment(space: SearchSpace, target: KatibTarget) -> dict[str, Any]:
    """The ``Experiment`` object: maximise validation AUPRC with TPE in ``target.trials`` trials,
    ``target.parallel`` at a time."""
    if not 1 <= target.parallel <= target.trials:
        raise ValueError(f"parallel trials must be 1 to {target.trials}, got {target.parallel}")
    job = {
        "apiVersion": "batch/v1",
        "kind": "Job",
        "spec": {
            "backoffLimit": 0,
            "template": {
                "metadata": {"annotations": {"sidecar.istio.io/inject": "false"}},
                "spec": {
                    "restartPolicy": "Never",
                    "containers": [
                        {
                            "name": CONTAINER,
                            "image": target.image,
                            "command": ["python", "-m", "fraud_detection.tuning.trial"],
                            "args": trial_args(space, target),
                        }
                    ],
                },
            },
        },
    }
    return {
        "apiVersion": KATIB_EXPERIMENT.api_version,
        "kind": KATIB_EXPERIMENT.kind,
        "metadata": {"name": target.name, "namespace": target.namespace},
        "spec": {
            "objective": {"type": "maximize", "objectiveMetricName": OBJECTIVE},
            "algorithm": {
                "algorithmName": "tpe",
                "algorithmSettings": [{"name": "random_state", "value": str(target.seed)}],
            },
            "parallelTrialCount": target.parallel,
            "maxTrialCount": target.trials,
            "maxFailedTrialCount": max(1, target.trials // 4),
            "metricsCollectorSpec": {"collector": {"kind": "StdOut"}},
            "parameters": [_parameter(p) for p in space.parameters],
            "trialTemplate": {
                "primaryContainerName": CONTAINER,
                "trialParameters": [
                    {"name": p.name, "reference": p.name, "description": f"{space.family} {p.name}"}
                    for p in space.parameters
                ],
                "trialSpec": job,
            },
        },
    }


def _strict(schema: Any) -> Any:
    """Katib's definitions with unknown field names refused in its own (``v1beta1.*``) objects."""
    if isinstance(schema, dict):
        out = {k: _strict(v) for k, v in schema.items()}
        if "properties" in out and "additionalProperties" not in out:
            out["additionalProperties"] = False
        return out
    if isinstance(schema, list):
        return [_strict(v) for v in schema]
    return schema


def validate(obj: dict[str, Any]) -> None:
    """Check ``obj`` against Katib's vendored CRD (group, version, kind, its openAPIV3Schema) and OpenAPI
    definitions (every field of ``v1beta1.Experiment``; unknown names refused).

    Raises:
        jsonschema.ValidationError: naming the path of the field at fault.
    """
    import jsonschema

    crd = yaml.safe_load((SCHEMAS / "experiment-crd.yaml").read_text())
    version = next(v for v in crd["spec"]["versions"] if v["name"] == KATIB_EXPERIMENT.version)
    api_version, kind = f"{crd['spec']['group']}/{KATIB_EXPERIMENT.version}", crd["spec"]["names"]["kind"]
    if obj.get("apiVersion") != api_version or obj.get("kind") != kind:
        raise jsonschema.ValidationError(f"not a {kind} of {api_version}")
    jsonschema.validate(obj, version["schema"]["openAPIV3Schema"])
    swagger = json.loads((SCHEMAS / "v1beta1-swagger.json").read_text())
    definitions = {name: _strict(d) if name.startswith("v1beta1.") else d for name, d in swagger["definitions"].items()}
    for missing in ("v1.Container", "v1.unstructured.Unstructured", "v1.Time", "v1.ListMeta", "v1.ObjectMeta"):
        definitions.setdefault(missing, {"type": "object"})
    root = {"definitions": definitions, "$ref": "#/definitions/v1beta1.Experiment"}
    jsonschema.Draft4Validator(root).validate(obj)


def plan(obj: dict[str, Any]) -> dict[str, Any]:
    """The exact request :func:`submit` sends: CustomObjectsApi.create_namespaced_custom_object's arguments."""
    return {
        "group": KATIB_EXPERIMENT.group,
        "version": KATIB_EXPERIMENT.version,
        "namespace": obj["metadata"]["namespace"],
        "plural": KATIB_EXPERIMENT.plural,
        "body": obj,
    }


def submit(obj: dict[str, Any]) -> dict[str, Any]:
    """Create the experiment with the current kube config (in-cluster when in a pod); returns the created object."""
    from kubernetes import client, config

    try:
        config.load_incluster_config()
    except config.ConfigException:
        config.load_kube_config()
    created: dict[str, Any] = client.CustomObjectsApi().create_namespaced_custom_object(**plan(obj))
    return created
