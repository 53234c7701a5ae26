"""Each audit's HTML report renders in headless Chromium with no network: no console errors, plots drawn."""

from __future__ import annotations

import re
from pathlib import Path

import pytest

from fraud_detection.audits import drift, fairness, poison
from fraud_detection.boosting import TrainResult
from fraud_detection.reports.drift import render_drift
from fraud_detection.reports.fairness import render_fairness
from fraud_detection.reports.poison import render_poison
from fraud_detection.reports.run import RunFacts, render_html
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


def _candidate_table(dom: str) -> list[list[str]]:
    table = re.search(r"<h2>Candidates</h2>\s*<table>(.*?)</table>", dom, flags=re.S)
    assert table, "the run page has no candidates table"
    rows = re.findall(r"<tr>(.*?)</tr>", table.group(1), flags=re.S)
    return [
        [re.sub(r"<[^>]+>", "", c).strip() for c in re.findall(r"<t[dh][^>]*>(.*?)</t[dh]>", r, re.S)] for r in rows
    ]


def test_the_run_page_fills_every_candidates_threshold_trees_and_mlflow_run(tmp_path: Path) -> None:
    """Each candidate's threshold, XGBoost's trees and a link to each candidate's own MLflow run, as the select step
    records them; no column is empty for every candidate."""
    metrics = {"test_auprc": 0.90, "best_iteration": 120.0}
    for family, threshold in (("xgboost", 0.31), ("mlp", 0.42), ("blend", 0.44)):
        metrics |= {f"{family}_validation_auprc": 0.8, f"{family}_test_auprc": 0.85, f"{family}_threshold": threshold}
    metrics["xgboost_best_iteration"] = 140.0
    facts = RunFacts(
        data_source="synthetic",
        data_version="sha256:0",
        windows={},
        metrics=metrics,
        model={"framework": "blend", "threshold": 0.44, "mlflow_run_id": "parent"},
        mlflow={"ui": "http://127.0.0.1:5000", "experiment_id": "3"},
        candidate_runs={"xgboost": "run-x", "mlp": "run-m", "blend": "run-b"},
    )
    page = tmp_path / "index.html"
    page.write_text(render_html(facts))
    rendered = chromium.render(page)
    assert rendered.errors == [], rendered.errors
    head, *rows = _candidate_table(rendered.dom)
    assert head == ["candidate", "validation AUPRC", "test AUPRC", "trees", "threshold", "MLflow run"]
    assert [row[3:] for row in rows] == [["141", "0.31", "run-x"], ["—", "0.42", "run-m"], ["—", "0.44", "run-b"]]
    for run in ("run-x", "run-m", "run-b"):
        assert f'href="http://127.0.0.1:5000/#/experiments/3/runs/{run}"' in rendered.dom

    without_xgboost = {k: v for k, v in metrics.items() if not k.startswith("xgboost")} | {"best_iteration": 1.0}
    facts.metrics, facts.model["framework"] = without_xgboost, "mlp"
    page.write_text(render_html(facts))
    head, *_ = _candidate_table(chromium.render(page).dom)
    assert "trees" not in head, "a column no candidate has a value for is left out"
