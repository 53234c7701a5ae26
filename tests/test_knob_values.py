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

# What each knob takes from the command line, and how the pipeline gets it.
ACCEPTED: dict[str, dict[str, Any]] = {
    # lists of numbers: comma-separated or JSON
    "poison_levels": {"0,0.05": [0.0, 0.05], " 0 , 0.05 ,0.1": [0.0, 0.05, 0.1], "[0, 0.05, 0.2]": [0.0, 0.05, 0.2]},
    "mlp_hidden_units": {"16,8": [16, 8], "[16.0]": [16]},
    # lists of choices
    "families": {"xgboost": ["xgboost"], "mlp,xgboost": ["mlp", "xgboost"], '["mlp"]': ["mlp"]},
    "poison_kinds": {"random": ["random"]},
    # whole numbers and numbers
    "max_depth": {"4": 4, " 4 ": 4},
    "learning_rate": {"0.3": 0.3, "1": 1.0, "1e-2": 0.01},
    # choices and text
    "deploy_target": {"local": "local"},
    "synthetic_setting": {"rotated": "rotated"},
    "data_uri": {"gs://bucket/data.csv": "gs://bucket/data.csv"},
    "sensitive_column": {"": ""},
}
# What each knob refuses.
REFUSED_TEXTS: dict[str, list[str]] = {
    # items that are no numbers, broken JSON, nothing; an item above 0.5, no clean baseline (0), a repeated level,
    # and levels without robustness_level 0.05
    "poison_levels": ["0,abc", "[0, 0.05", '{"a": 1}', "", "0,0.05,0.6", "0.05,0.1", "0,0.05,0.05", "0,0.1"],
    "mlp_hidden_units": ["16,0", "16,8.5"],
    "families": ["xgboost,lightgbm", "[1]"],
    "poison_kinds": ["random,2"],
    # out of bounds, or no (whole) number
    "max_depth": ["0", "four", "4.5", "true"],
    "canary_traffic_percent": ["101"],
    "learning_rate": ["0", "nan", "inf"],
    "subsample": ["1.5"],
    "train_fraction": ["0.8"],  # leaves no room for the current window
    "deploy_target": ["gke", "LOCAL"],
}
CASES: list[tuple[str, str, Any]] = [
    *((name, text, value) for name, values in ACCEPTED.items() for text, value in values.items()),
    *((name, text, REFUSED) for name, texts in REFUSED_TEXTS.items() for text in texts),
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
