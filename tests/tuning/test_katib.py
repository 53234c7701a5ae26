"""The Katib Experiment: valid against Katib's vendored schema, and a trial's values reach the train-family step
unchanged through the trial's argument parsing."""

from __future__ import annotations

import argparse
import io
import json

import jsonschema
import optuna
import pytest

from cli.cluster import katib_command
from fraud_detection.tuning import trial
from fraud_detection.tuning.study import TUNABLE
from ops import katib

TARGET = katib.KatibTarget("fraud-tune", "kubeflow", "components:1", "/data/t.parquet", "/data/v.parquet", 12, 3)


@pytest.mark.parametrize("family", sorted(TUNABLE))
def test_the_experiment_is_valid_against_katibs_schema(family: str) -> None:
    rendered = katib.experiment(TUNABLE[family].space, TARGET)
    katib.validate(rendered)
    spec = rendered["spec"]
    assert spec["objective"]["objectiveMetricName"] == trial.OBJECTIVE and spec["algorithm"]["algorithmName"] == "tpe"
    assert (spec["maxTrialCount"], spec["parallelTrialCount"]) == (12, 3)


def test_a_misspelt_or_misplaced_field_is_refused() -> None:
    rendered = katib.experiment(TUNABLE["xgboost"].space, TARGET)
    rendered["spec"]["parameters"][0]["feasableSpace"] = rendered["spec"]["parameters"][0].pop("feasibleSpace")
    with pytest.raises(jsonschema.ValidationError, match="feasableSpace"):
        katib.validate(rendered)
    with pytest.raises(jsonschema.ValidationError):
        katib.validate({**rendered, "kind": "Trial"})


@pytest.mark.parametrize("family", sorted(TUNABLE))
def test_a_trials_values_reach_the_step_unchanged(family: str) -> None:
    space = TUNABLE[family].space
    study = optuna.create_study(sampler=optuna.samplers.RandomSampler(seed=3))
    for _ in range(5):
        drawn = study.ask()
        values = space.suggest(drawn)
        every = {p.name: drawn.params.get(p.name, (p.choices or (p.low,))[0]) for p in space.parameters}
        container = katib.experiment(space, TARGET)["spec"]["trialTemplate"]["trialSpec"]["spec"]["template"]
        args = container["spec"]["containers"][0]["args"]
        # Katib puts each sampled value, as text, where its placeholder is (it samples every parameter)
        filled = [
            a.replace(f"${{trialParameters.{a[2:].split('=')[0]}}}", str(every.get(a[2:].split("=")[0], "")))
            for a in args
        ]
        parsed_args, parsed = trial.parse(filled)
        assert parsed == values and parsed_args.family == family
        assert str(parsed_args.train_data) == TARGET.train_data


def test_the_dry_run_prints_the_exact_request() -> None:
    args = argparse.Namespace(
        family="xgboost",
        train_data="/d/t",
        validation_data="/d/v",
        name=None,
        namespace="fraud",
        image="img:1",
        trials=20,
        parallel=2,
        seed=7,
        data_version="",
        dry_run=True,
    )
    out = io.StringIO()
    assert katib_command(args, out=out) == 0
    request = json.loads(out.getvalue())
    expected = katib.plan(
        katib.experiment(
            TUNABLE["xgboost"].space,
            katib.KatibTarget("fraud-tune-xgboost", "fraud", "img:1", "/d/t", "/d/v", 20, 2, seed=7),
        )
    )
    assert request == expected
    assert (request["group"], request["version"], request["plural"], request["namespace"]) == (
        "kubeflow.org",
        "v1beta1",
        "experiments",
        "fraud",
    )
