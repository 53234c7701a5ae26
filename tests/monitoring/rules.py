"""The alert rules as promtool and Prometheus read them: the ``spec`` of the PrometheusRule manifest."""

from __future__ import annotations

import re
import shutil
from pathlib import Path
from typing import Any

import yaml

REPO = Path(__file__).resolve().parents[2]
RULE = REPO / "manifests" / "components" / "monitoring" / "prometheusrule.yaml"
DASHBOARD = REPO / "manifests" / "components" / "monitoring" / "fraud-detection-dashboard.json"
RULE_TESTS = Path(__file__).with_name("rules_test.yaml")
# Every alert is `<expression> <comparison> <number>` (see the manifest's header).
LOOP_GROUP = "fraud-loop.alerts"
"""The group of the loop's alerts, on the joiner's gauges: the live serving test leaves them out."""
LOOP_ALERTS = (
    "FraudFeatureSkew",
    "FraudFeatureDrift",
    "FraudScoreDrift",
    "FraudLivePerformanceDecay",
    "FraudNewestVersionDegraded",
    "FraudShadowChallengerWins",
    "FraudPredictionLogDropping",
)
COMPARISON = re.compile(r"^(?P<lhs>.+?)\s*(?P<op>==|!=|>=|<=|>|<)\s*(?P<threshold>-?[0-9.e+]+)\s*$", re.DOTALL)


def promtool() -> str:
    """Debian's promtool (``make sysdeps`` installs the prometheus package)."""
    found = shutil.which("promtool")
    if found is None:
        raise FileNotFoundError("promtool is missing: `make sysdeps` installs Debian's prometheus package")
    return found


def rule_groups(path: Path = RULE) -> dict[str, Any]:
    """The PrometheusRule's spec: a Prometheus rule file."""
    document = yaml.safe_load(path.read_text())
    assert document["kind"] == "PrometheusRule"
    return dict(document["spec"])


def alerts(groups: dict[str, Any], leave_out: tuple[str, ...] = ()) -> list[dict[str, Any]]:
    """The alerting rules of ``groups``, but those of the groups named in ``leave_out``."""
    return [
        rule
        for group in groups["groups"]
        if group["name"] not in leave_out
        for rule in group["rules"]
        if "alert" in rule
    ]


def without_waits(groups: dict[str, Any]) -> dict[str, Any]:
    """``groups`` with every alert's ``for`` removed: a test sees an alert fire as soon as its condition holds."""
    for rule in alerts(groups):
        rule.pop("for", None)
    return groups


def as_bool(expression: str) -> str:
    """``X > 3`` as ``X > bool 3``: 0 or 1 wherever X has data, instead of data only while the alert fires."""
    match = COMPARISON.match(expression.strip())
    if match is None:
        raise ValueError(f"not of the form '<expression> <comparison> <number>': {expression!r}")
    return f"{match['lhs']} {match['op']} bool {match['threshold']}"
