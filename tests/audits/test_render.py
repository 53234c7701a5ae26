"""Each audit's HTML report renders in headless Chromium with no network: no console errors, plots drawn."""

from __future__ import annotations

from pathlib import Path

import pytest

from fraud_detection.audits import drift, fairness, poison
from fraud_detection.boosting import TrainResult
from fraud_detection.reports.drift import render_drift
from fraud_detection.reports.fairness import render_fairness
from fraud_detection.reports.poison import render_poison
from tests.audits import chromium
from tests.audits.conftest import Windows, run_poison_level

pytestmark = [
    pytest.mark.slow,
    pytest.mark.skipif(
        chromium.chromium_binary() is None, reason="needs Debian's chromium (apt-get install -y chromium)"
    ),
]


@pytest.fixture(scope="module")
def report_paths(windows: Windows, trained: TrainResult, tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    out = tmp_path_factory.mktemp("reports")
    w = windows
    levels = [("none", 0.0), ("random", 0.1), ("targeted", 0.1)]
    results = [run_poison_level(w, kind, level, seed=1) for kind, level in levels]
    paths = {"poison": render_poison(poison.summarise(results), out / "poison").report_html}
    result = fairness.run_fairness(w.frames["test"], trained.booster, trained.threshold, "age_group")
    paths["fairness"] = render_fairness(result, out / "fair").report_html
    drifted = drift.run_drift(w.frames["train"], w.frames["current"], booster=trained.booster)
    paths["drift"] = render_drift(drifted, out / "drift").report_html
    return paths


@pytest.mark.parametrize(("name", "pngs"), [("poison", 1), ("fairness", 2)])
def test_matplotlib_reports_render_their_images(report_paths: dict[str, Path], name: str, pngs: int) -> None:
    page = chromium.render(report_paths[name])
    assert page.errors == [], page.errors
    assert page.external_refs == []
    assert page.data_images == pngs
    assert "<table>" in page.dom


def test_evidently_report_renders_offline_with_its_charts(report_paths: dict[str, Path]) -> None:
    page = chromium.render(report_paths["drift"])
    assert page.errors == [], page.errors
    assert page.external_refs == [], "the Evidently report must not load scripts or styles from a CDN"
    assert page.plotly_plots > 0, "Evidently's JavaScript did not draw any chart"
    assert page.svg_or_canvas > 0
    assert "V1" in page.dom and "Amount" in page.dom


def test_a_broken_page_is_caught(tmp_path: Path) -> None:
    """The checker itself can fail: a script error and a CDN script are both reported."""
    bad = tmp_path / "bad.html"
    bad.write_text(
        '<html><body><script src="https://cdn.example.com/x.js"></script>'
        "<script>notDefinedAnywhere();</script></body></html>"
    )
    page = chromium.render(bad)
    assert any("notDefinedAnywhere" in e for e in page.errors)
    assert page.external_refs and page.data_images == 0 and page.plotly_plots == 0
