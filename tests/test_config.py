"""One declaration per knob: the config, the pipeline signature, the compiled YAML, the CLI and the components agree.

The checks read the project's own pipeline and parser; each comparison is a function so that a test can show
it fails on a copy of the compiled pipeline with one disagreement put in.
"""

from __future__ import annotations

import argparse
import copy
import inspect
from pathlib import Path
from typing import Any, get_args

import pytest
import yaml
from pydantic import TypeAdapter, ValidationError

from cli.main import LOCAL_DEFAULTS, build_parser
from fraud_detection import config, parsers
from fraud_detection.config import ConfigError, check_parameters, parameter_problems, pipeline_knobs
from fraud_detection.families import FAMILIES
from pipelines.compile import COMPILED_PATH
from pipelines.pipeline import fraud_pipeline

KFP_TYPES = {str: "STRING", int: "NUMBER_INTEGER", float: "NUMBER_DOUBLE", bool: "BOOLEAN", list: "LIST"}


def compiled() -> dict[str, Any]:
    return yaml.safe_load(COMPILED_PATH.read_text())


def signature_problems(spec: dict[str, Any]) -> list[str]:
    """Where the compiled pipeline's parameters differ from the knobs: names, types, defaults, docs (the YAML
    sorts them by name; the signature test checks the order)."""
    inputs = spec["root"]["inputDefinitions"]["parameters"]
    knobs = pipeline_knobs()
    problems = []
    extra, missing = sorted(set(inputs) - {k.name for k in knobs}), sorted({k.name for k in knobs} - set(inputs))
    problems += [f"parameter {name} is not a knob" for name in extra]
    problems += [f"knob {name} is not a parameter" for name in missing]
    for knob in knobs:
        if knob.name not in inputs:
            continue
        declared = inputs[knob.name]
        if declared.get("parameterType") != KFP_TYPES[knob.type]:
            problems.append(f"{knob.name}: type {declared.get('parameterType')} != {KFP_TYPES[knob.type]}")
        if declared.get("defaultValue") != knob.default:
            problems.append(f"{knob.name}: default {declared.get('defaultValue')!r} != {knob.default!r}")
        if declared.get("description") != knob.doc:
            problems.append(f"{knob.name}: description {declared.get('description')!r} != {knob.doc!r}")
    return problems


def wiring_problems(spec: dict[str, Any]) -> list[str]:
    """Where a task's inputs and the knobs disagree.

    Every task input named like a knob must receive that knob, with the knob's type in the component's own
    signature; every other input must come from an upstream task or a loop item; every knob must reach a task.
    """
    knobs = {k.name: k for k in pipeline_knobs()}
    components = spec["components"]
    problems = []
    used: set[str] = set()

    def walk(dag: dict[str, Any]) -> None:
        for task_name, task in dag["tasks"].items():
            component = components[task["componentRef"]["name"]]
            if "dag" in component:
                walk(component["dag"])
            declared = component.get("inputDefinitions", {}).get("parameters", {})
            for name, source in task.get("inputs", {}).get("parameters", {}).items():
                given = source.get("componentInputParameter")
                if name in knobs:
                    if given != name and not given.startswith(f"pipelinechannel--{name}"):
                        problems.append(f"{task_name}.{name} gets {given or source}, not the knob {name}")
                    if (
                        "dag" not in component
                        and declared.get(name, {}).get("parameterType") != KFP_TYPES[knobs[name].type]
                    ):
                        problems.append(
                            f"{task_name}.{name}: component type {declared.get(name, {}).get('parameterType')} "
                            f"!= knob type {KFP_TYPES[knobs[name].type]}"
                        )
                    used.add(name)
                elif given and given.removeprefix("pipelinechannel--") in knobs and "loop-item" not in given:
                    used.add(given.removeprefix("pipelinechannel--"))
                    if "dag" not in component:
                        problems.append(f"{task_name}.{name} takes the knob {given} under another name")
                elif not (given or "taskOutputParameter" in source or "runtimeValue" in source):
                    problems.append(f"{task_name}.{name}: no upstream source ({source})")

    walk(spec["root"]["dag"])
    problems += [f"knob {name} reaches no task" for name in knobs if name not in used]
    return problems


def cli_problems(parser: argparse.ArgumentParser) -> list[str]:
    """Where the ``fraud run`` options differ from the knobs: names, defaults, help text."""
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run = sub.choices["run"]
    # runner, verbose, summary_to: how it runs and what it prints, not what it computes
    options = {a.dest: a for a in run._actions if a.dest not in ("help", "runner", "verbose", "summary_to")}
    knobs = {k.name: k for k in pipeline_knobs()}
    problems = [f"option --{n} is not a knob" for n in options if n not in knobs]
    for name, knob in knobs.items():
        action = options.get(name)
        if action is None:
            problems.append(f"knob {name} has no option")
            continue
        expected = None if name in LOCAL_DEFAULTS else knob.default
        if action.default != expected:
            problems.append(f"--{name}: default {action.default!r} != {expected!r}")
        if not (action.help or "").startswith(knob.doc):
            problems.append(f"--{name}: help {action.help!r} does not start with the knob's doc")
    return problems


def test_every_knob_is_declared_with_a_one_line_doc_and_valid_default() -> None:
    knobs = pipeline_knobs()
    assert len({k.name for k in knobs}) == len(knobs), "a knob is declared twice"
    for knob in knobs:
        assert knob.doc and "\n" not in knob.doc, knob.name
        assert knob.type in KFP_TYPES, knob.name
    assert parameter_problems({}) == []


def test_the_pipeline_signature_is_the_knobs() -> None:
    parameters = inspect.signature(fraud_pipeline.pipeline_func).parameters
    assert [(p.name, p.annotation, p.default) for p in parameters.values()] == [
        (k.name, k.type, k.default) for k in pipeline_knobs()
    ]


def test_the_compiled_pipeline_declares_every_knob_and_wires_it_by_name() -> None:
    spec = compiled()
    assert signature_problems(spec) == []
    assert wiring_problems(spec) == []


def test_the_cli_options_are_the_knobs() -> None:
    assert cli_problems(build_parser()) == []


def test_the_checks_fail_when_the_pipeline_and_the_knobs_disagree() -> None:
    spec = compiled()
    drifted = copy.deepcopy(spec)
    drifted["root"]["inputDefinitions"]["parameters"]["max_depth"]["defaultValue"] = 7
    assert signature_problems(drifted) == ["max_depth: default 7 != 6"]

    retyped = copy.deepcopy(spec)
    promote = retyped["components"]["comp-evaluate-and-promote"]["inputDefinitions"]["parameters"]
    promote["auprc_tolerance"]["parameterType"] = "NUMBER_INTEGER"
    assert wiring_problems(retyped) == [
        "evaluate-and-promote.auprc_tolerance: component type NUMBER_INTEGER != knob type NUMBER_DOUBLE"
    ]

    unwired = copy.deepcopy(spec)
    del unwired["root"]["dag"]["tasks"]["evaluate-and-promote"]["inputs"]["parameters"]["auprc_tolerance"]
    assert wiring_problems(unwired) == ["knob auprc_tolerance reaches no task"]


def test_the_cli_check_fails_when_an_option_drifts_from_its_knob() -> None:
    parser = build_parser()
    sub = next(a for a in parser._actions if isinstance(a, argparse._SubParsersAction))
    run = sub.choices["run"]
    next(a for a in run._actions if a.dest == "n_rounds").default = 301
    assert cli_problems(parser) == ["--n_rounds: default 301 != 300"]


@pytest.mark.parametrize(
    "values, message",
    [
        (
            {"poison_levels": [0, 0.1]},
            "robustness_level 0.05 must be one of the non-zero poison_levels [0.1]",
        ),
        ({"poison_levels": [0.05]}, "poison_levels must include 0 (the clean baseline"),
        ({"poison_levels": [0, 0.05, 0.05]}, "poison_levels has repeated levels: [0, 0.05, 0.05]"),
        (
            {"train_fraction": 0.7, "test_fraction": 0.2},
            "train_fraction, validation_fraction and test_fraction must be positive and leave room",
        ),
        ({"poison_kinds": ["random", "flip"]}, "poison_kinds item must be one of random, targeted, got 'flip'"),
        ({"max_depth": 0}, "max_depth must be >= 1, got 0"),
        ({"subsample": 1.5}, "subsample must be <= 1, got 1.5"),
        ({"learning_rate": 0}, "learning_rate must be > 0, got 0"),
        ({"n_rounds": 2.5}, "n_rounds must be a whole number, got 2.5"),
        ({"deploy_target": "gke"}, "deploy_target must be one of kserve, local, got 'gke'"),
        ({"max_dept": 5}, "unknown parameter 'max_dept'"),
    ],
)
def test_bad_parameters_are_refused_naming_the_parameters(values: dict[str, Any], message: str) -> None:
    with pytest.raises(ConfigError) as raised:
        check_parameters(values)
    assert message in str(raised.value)


def test_good_parameters_come_back_with_the_defaults_filled_in() -> None:
    values = check_parameters({"poison_levels": [0, 0.1], "robustness_level": 0.1})
    assert values["robustness_level"] == 0.1 and values["max_depth"] == config.TrainKnobs().max_depth
    assert set(values) == {k.name for k in pipeline_knobs()}


def test_a_group_built_by_a_component_refuses_a_bad_value_naming_the_knob() -> None:
    with pytest.raises(ConfigError, match=r"auprc_tolerance must be >= 0, got -0\.1"):
        config.GateKnobs(auprc_tolerance=-0.1)
    with pytest.raises(ConfigError, match="leave room for the current window"):
        config.DataKnobs(train_fraction=0.8)
    # KFP hands list items over JSON as floats: a whole number stays whole
    assert config.TrainKnobs(mlp_hidden_units=[64.0, 32.0]).mlp_hidden_units == [64, 32]  # type: ignore[list-item]


def test_one_parser_per_kind_reads_command_line_text() -> None:
    knobs = {k.name: k for k in pipeline_knobs()}
    assert knobs["poison_levels"].parse("0, 0.05") == knobs["poison_levels"].parse("[0, 0.05]") == [0.0, 0.05]
    assert knobs["families"].parse("mlp") == ["mlp"]
    assert knobs["max_depth"].parse("4") == 4
    with pytest.raises(ConfigError, match="poison_kinds item must be one of random, targeted, got 'flip'"):
        knobs["poison_kinds"].parse("random,flip")


@pytest.mark.parametrize("text", ["1", "true", "Yes", "ON", " on "])
def test_a_flag_takes_the_usual_words_for_true(text: str) -> None:
    assert TypeAdapter(parsers.Flag).validate_python(text) is True


@pytest.mark.parametrize("text", ["0", "false", "No", "off"])
def test_a_flag_takes_the_usual_words_for_false(text: str) -> None:
    assert TypeAdapter(parsers.Flag).validate_python(text) is False


@pytest.mark.parametrize("text", ["maybe", "t", "2", ""])
def test_a_flag_refuses_anything_else(text: str) -> None:
    with pytest.raises(ValidationError, match="must be true or false"):
        TypeAdapter(parsers.Flag).validate_python(text)


def test_the_family_choices_are_the_families_the_bake_off_trains() -> None:
    assert get_args(config.FamilyName) == FAMILIES


def test_a_task_given_knob_groups_that_differ_from_its_knob_inputs_fails_to_compile(tmp_path: Path) -> None:
    from kfp import compiler, dsl

    from components.deploy import deploy_model
    from pipelines.pipeline import Knobs

    knobs = Knobs({k.name: k.default for k in pipeline_knobs()})

    def too_many():  # no annotations: KFP would read them as pipeline inputs
        decision = dsl.importer(artifact_uri="gs://b/decision.md", artifact_class=dsl.Markdown).output
        deploy_model(decision=decision, **knobs.group(config.DeployKnobs))  # deploy takes no registered_model_name

    with pytest.raises(TypeError, match='unexpected keyword argument "registered_model_name"'):
        compiler.Compiler().compile(dsl.pipeline(name="one-knob-too-many")(too_many), str(tmp_path / "p.yaml"))
