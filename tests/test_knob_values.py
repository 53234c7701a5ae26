"""``fraud run --X VALUE`` and ``fraud submit ... --param X=VALUE`` take exactly the same values.

One list of cases (good and bad values of list, number and choice knobs; the pipeline has no true/false knob)
goes through both commands' real argument parsing: ``fraud run`` up to the point where it would start the run,
``fraud submit kfp --dry-run`` up to the request it would send. Both must accept or refuse each value alike, and
hand the pipeline the same typed value.
"""

from __future__ import annotations

import io
import json
from pathlib import Path
from typing import Any

import pytest

from cli.main import build_parser, run_parameters
from fraud_detection.config import ConfigError
from fraud_detection.settings import Settings

PIPELINE = Path(__file__).resolve().parents[1] / "pipelines" / "fraud_pipeline.yaml"
REFUSED = "refused"

CASES: list[tuple[str, str, Any]] = [
    # lists of numbers: comma-separated or JSON, items within bounds, the rules over several knobs
    ("poison_levels", "0,0.05", [0.0, 0.05]),
    ("poison_levels", " 0 , 0.05 ,0.1", [0.0, 0.05, 0.1]),
    ("poison_levels", "[0, 0.05, 0.2]", [0.0, 0.05, 0.2]),
    ("poison_levels", "0,abc", REFUSED),
    ("poison_levels", "[0, 0.05", REFUSED),
    ("poison_levels", '{"a": 1}', REFUSED),
    ("poison_levels", "", REFUSED),
    ("poison_levels", "0,0.05,0.6", REFUSED),  # an item above 0.5
    ("poison_levels", "0.05,0.1", REFUSED),  # no clean baseline
    ("poison_levels", "0,0.05,0.05", REFUSED),  # a repeated level
    ("poison_levels", "0,0.1", REFUSED),  # robustness_level 0.05 is not among them
    ("mlp_hidden_units", "16,8", [16, 8]),
    ("mlp_hidden_units", "[16.0]", [16]),
    ("mlp_hidden_units", "16,0", REFUSED),
    ("mlp_hidden_units", "16,8.5", REFUSED),
    # lists of choices
    ("families", "xgboost", ["xgboost"]),
    ("families", "mlp,xgboost", ["mlp", "xgboost"]),
    ("families", '["mlp"]', ["mlp"]),
    ("families", "xgboost,lightgbm", REFUSED),
    ("families", "[1]", REFUSED),
    ("poison_kinds", "random", ["random"]),
    ("poison_kinds", "random,2", REFUSED),
    # whole numbers and numbers, with their bounds
    ("max_depth", "4", 4),
    ("max_depth", " 4 ", 4),
    ("max_depth", "0", REFUSED),
    ("max_depth", "four", REFUSED),
    ("max_depth", "4.5", REFUSED),
    ("max_depth", "true", REFUSED),
    ("canary_traffic_percent", "101", REFUSED),
    ("learning_rate", "0.3", 0.3),
    ("learning_rate", "1", 1.0),
    ("learning_rate", "1e-2", 0.01),
    ("learning_rate", "0", REFUSED),
    ("learning_rate", "nan", REFUSED),
    ("learning_rate", "inf", REFUSED),
    ("subsample", "1.5", REFUSED),
    ("train_fraction", "0.8", REFUSED),  # leaves no room for the current window
    # choices and text
    ("deploy_target", "local", "local"),
    ("deploy_target", "gke", REFUSED),
    ("deploy_target", "LOCAL", REFUSED),
    ("synthetic_setting", "rotated", "rotated"),
    ("data_uri", "gs://bucket/data.csv", "gs://bucket/data.csv"),
    ("sensitive_column", "", ""),
]


@pytest.fixture()
def settings(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Settings:
    monkeypatch.setenv("FRAUD_HOME", str(tmp_path / "home"))
    monkeypatch.setenv("HOME", str(tmp_path))  # kfp may read ~/.config/kfp
    monkeypatch.delenv("KFP_TOKEN", raising=False)
    return Settings()


def through_run(name: str, text: str, settings: Settings) -> Any:
    """What ``fraud run --NAME TEXT`` hands the pipeline for ``name``, or REFUSED."""
    try:
        args = build_parser().parse_args(["run", f"--{name.replace('_', '-')}", text])
        return run_parameters(args, settings)[name]
    except (SystemExit, ConfigError):
        return REFUSED


def through_submit(name: str, text: str) -> Any:
    """What ``fraud submit kfp --dry-run --param NAME=TEXT`` would send for ``name``, or REFUSED."""
    argv = ["submit", "kfp", str(PIPELINE), "--host", "http://127.0.0.1:9", "--dry-run", "--param", f"{name}={text}"]
    args = build_parser().parse_args(argv)
    out = io.StringIO()
    if args.handler(args, None, out=out) != 0:
        return REFUSED
    return json.loads(out.getvalue())["parameters"][name]


def typed(value: Any) -> Any:
    """A value with its types spelled out, so 1 and 1.0 differ."""
    if isinstance(value, list):
        return [typed(item) for item in value]
    return (type(value).__name__, value)


@pytest.mark.parametrize(("name", "text", "expected"), CASES)
def test_run_and_submit_take_the_same_values(
    name: str, text: str, expected: Any, settings: Settings, capsys: pytest.CaptureFixture[str]
) -> None:
    by_run, by_submit = through_run(name, text, settings), through_submit(name, text)
    assert typed(by_run) == typed(by_submit) == typed(expected)
    if expected == REFUSED:
        err = capsys.readouterr().err
        assert name in err, err  # both say which parameter is at fault


def test_the_cases_cover_every_kind_of_knob_value() -> None:
    from fraud_detection.config import pipeline_knobs

    kinds = {k.name: (k.type, bool(k.choices)) for k in pipeline_knobs()}
    covered = {kinds[name] for name, _, _ in CASES}
    assert covered == set(kinds.values())
