"""``promtool test rules`` on the alerts of the PrometheusRule manifest, and the same tests failing on broken rules."""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import pytest
import yaml

from tests.monitoring.rules import LOOP_ALERTS, RULE_TESTS, alerts, as_bool, promtool, rule_groups

pytestmark = pytest.mark.slow  # promtool replays a day of samples for the flagged-rate alert (seconds)


def _promtool_test(
    directory: Path, groups: dict[str, Any], only: str | None = None
) -> subprocess.CompletedProcess[str]:
    """``promtool test rules`` of the project's unit tests against ``groups``; with ``only``, just the tests that
    check that alert (each promtool run replays every test's samples: a second or more per test)."""
    (directory / "rules.yaml").write_text(yaml.safe_dump(groups, sort_keys=False))
    if only is None:
        shutil.copy(RULE_TESTS, directory / "rules_test.yaml")
    else:
        tests = yaml.safe_load(RULE_TESTS.read_text())
        tests["tests"] = [test for test in tests["tests"] if only in _alerts_checked(test)]
        assert tests["tests"], f"no unit test checks {only}"
        (directory / "rules_test.yaml").write_text(yaml.safe_dump(tests, sort_keys=False))
    return subprocess.run(
        [promtool(), "test", "rules", "rules_test.yaml"],
        cwd=directory,
        capture_output=True,
        text=True,
        timeout=300,
        check=False,
    )


def _alerts_checked(test: dict[str, Any]) -> set[str]:
    """The alerts a promtool unit test checks (firing or quiet)."""
    return {case["alertname"] for case in test.get("alert_rule_test", [])}


def test_the_rules_are_valid_and_every_alert_has_a_unit_test(tmp_path: Path) -> None:
    groups = rule_groups()
    (tmp_path / "rules.yaml").write_text(yaml.safe_dump(groups))
    check = subprocess.run(
        [promtool(), "check", "rules", "rules.yaml"], cwd=tmp_path, capture_output=True, text=True, timeout=60
    )
    assert check.returncode == 0, check.stdout + check.stderr
    tested = {
        case["alertname"]
        for test in yaml.safe_load(RULE_TESTS.read_text())["tests"]
        for case in test.get("alert_rule_test", [])
        if case.get("exp_alerts")
    }
    names = {rule["alert"] for rule in alerts(groups)}
    assert names >= {
        "FraudHighErrorRatio",
        "FraudHighLatencyP99",
        "FraudNoTraffic",
        "FraudFlaggedRateAnomaly",
        "FraudConsumerLag",
        "FraudModelNotReady",
        *LOOP_ALERTS,
    }
    assert names == tested, f"alerts without a firing unit test: {names - tested}"
    for rule in alerts(groups):
        as_bool(rule["expr"])  # every alert has the form the live test relies on


def test_promtool_test_rules_passes(tmp_path: Path) -> None:
    result = _promtool_test(tmp_path, rule_groups())
    assert result.returncode == 0, result.stdout + result.stderr
    assert "SUCCESS" in result.stdout


BREAKS = {
    # alert -> (what is changed in its expression, into what): each a plausible slip.
    "FraudHighErrorRatio": ("> 0.01", "> 0.1"),
    "FraudHighLatencyP99": ("> 0.25", "> 2.5"),
    "FraudStreamHighLatencyP99": ("> 5", "> 50"),
    "FraudNoTraffic": ("== 0", "< 0"),
    "FraudFlaggedRateAnomaly": ("ratio_rate1d", "ratio_rate15m"),
    "FraudConsumerLag": ("> 10000", "> 100000"),
    "FraudModelNotReady": ("min by (job, model_name)", "max by (model_name)"),
    "FraudFeatureSkew": ("> 1", "> 3"),
    "FraudFeatureDrift": ('column!="score"', 'column=~".+"'),
    "FraudScoreDrift": ('column="score"', 'column!="score"'),
    "FraudLivePerformanceDecay": ("offset 7d", "offset 1h"),
    "FraudNewestVersionDegraded": ("< 10", "< 0.1"),
    "FraudShadowChallengerWins": (">= 1000", ">= 100"),
    "FraudPredictionLogDropping": ("> 0", "> 1"),
}


@pytest.mark.parametrize("alert", sorted(BREAKS))
def test_promtool_test_rules_fails_on_a_broken_rule(tmp_path: Path, alert: str) -> None:
    groups = rule_groups()
    rule = next(r for r in alerts(groups) if r["alert"] == alert)
    old, new = BREAKS[alert]
    assert old in rule["expr"], rule["expr"]
    rule["expr"] = rule["expr"].replace(old, new)
    result = _promtool_test(tmp_path, groups, only=alert)
    assert result.returncode != 0
    assert f"alertname: {alert}" in result.stdout + result.stderr, result.stdout[-2000:]
