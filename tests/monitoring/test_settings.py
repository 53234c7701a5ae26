"""The loop's processes take each setting from an option, else a ``FRAUD_*`` variable, else its default, and a
missing required one ends the program naming both."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from monitor.options import add_options, build
from monitor.settings import ControllerSettings, JoinerSettings


def _parse(kind: type[JoinerSettings] | type[ControllerSettings], *argv: str) -> JoinerSettings | ControllerSettings:
    parser = argparse.ArgumentParser()
    add_options(parser, kind)
    return build(kind, parser.parse_args(argv), parser)


def test_an_option_wins_over_its_variable_which_wins_over_the_default(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_DB", "/var/lib/join.sqlite")
    monkeypatch.setenv("FRAUD_METRICS_PORT", "9300")
    settings = _parse(JoinerSettings, "--metrics-port", "9400")
    assert isinstance(settings, JoinerSettings)
    assert (settings.db, settings.metrics_port, settings.metrics_host) == (
        Path("/var/lib/join.sqlite"),
        9400,
        "127.0.0.1",
    )


def test_the_gates_are_read_as_json_from_an_option_or_a_variable(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("FRAUD_GATES", '{"auprc_tolerance": 0.02}')
    settings = _parse(ControllerSettings, "--token-file", "t", "--serving-root", "r")
    assert isinstance(settings, ControllerSettings) and settings.gates.auprc_tolerance == 0.02
    given = _parse(
        ControllerSettings, "--token-file", "t", "--serving-root", "r", "--gates", '{"auprc_tolerance": 0.03}'
    )
    assert isinstance(given, ControllerSettings) and given.gates.auprc_tolerance == 0.03
    assert given.host == "127.0.0.1"


def test_a_missing_setting_names_its_option_and_its_variable(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(ControllerSettings, "--serving-root", "r")
    assert "--token-file (FRAUD_TOKEN_FILE): Field required" in capsys.readouterr().err


def test_a_value_out_of_bounds_is_refused(capsys: pytest.CaptureFixture[str]) -> None:
    with pytest.raises(SystemExit):
        _parse(JoinerSettings, "--db", "x", "--resamples", "3")
    assert "--resamples (FRAUD_RESAMPLES)" in capsys.readouterr().err
