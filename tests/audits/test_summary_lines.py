"""What the run summary and the run's report page say about the audits: the model the poison sweep retrains,
recovery only beyond noise, and a fairness figure that says when recall was not compared."""

from __future__ import annotations

import json
from pathlib import Path
from types import SimpleNamespace

import numpy as np

from fraud_detection.audits import fairness
from fraud_detection.boosting import TrainResult
from fraud_detection.reports.run import RunFacts, render_html, render_markdown
from pipelines.summary import _fairness_lines, _poison_lines
from tests.audits.conftest import Windows

TABLE = [
    {"kind": "random", "level_pct": 0.0, "flipped": 0, "auprc": 0.884, "recall": 0.948, "precision": 0.9,
     "auprc_defended": 0.877, "recall_defended": 0.875, "auprc_lost": 0.0, "recovered": None, "relabelled": 3,
     "dropped": 1, "auprc_noise": 0.046},
    {"kind": "random", "level_pct": 5.0, "flipped": 8000, "auprc": 0.860, "recall": 0.917, "precision": 0.9,
     "auprc_defended": 0.827, "recall_defended": 0.823, "auprc_lost": 0.024, "recovered": None, "relabelled": 3,
     "dropped": 1, "auprc_noise": 0.046},
    {"kind": "random", "level_pct": 20.0, "flipped": 30000, "auprc": 0.661, "recall": 0.552, "precision": 0.9,
     "auprc_defended": 0.825, "recall_defended": 0.802, "auprc_lost": 0.223, "recovered": 0.735, "relabelled": 3,
     "dropped": 1, "auprc_noise": 0.046},
]  # fmt: skip
"""The default data's random attack (poison_table.json rows), as the sweep now writes them."""


def _facts(**extra: object) -> RunFacts:
    return RunFacts(data_source="synthetic", data_version="sha256:0", windows={}, metrics={}, **extra)  # type: ignore[arg-type]


def test_the_poison_lines_name_the_retrained_model_and_show_recovery_only_beyond_noise(tmp_path: Path) -> None:
    table = tmp_path / "poison_table.json"
    table.write_text(json.dumps(TABLE))
    out = {"poison_table": SimpleNamespace(path=str(table)), "model": SimpleNamespace(metadata={"framework": "blend"})}
    text = "\n".join(_poison_lines(out))
    assert text.splitlines()[0].endswith("retrains XGBoost (not the winning blend)")
    lines = text.splitlines()
    assert lines[3].split()[:2] == ["random", "5%"] and lines[3].split()[4] == "–", "a loss within the noise"
    assert lines[4].split()[4] == "74%"
    assert "within noise (< 0.046:" in " ".join(line.strip() for line in lines)

    page = render_html(_facts(model={"framework": "blend"}, poison_rows=TABLE))
    assert "XGBoost (not the winning blend) retrained" in page
    assert ">–</td>" in page and ">74%</td>" in page
    assert "XGBoost" in render_markdown(_facts(model={"framework": "xgboost"}, poison_rows=TABLE))


def test_a_fairness_figure_measured_on_fpr_alone_says_recall_was_not_compared(
    windows: Windows, trained: TrainResult
) -> None:
    """80,000 rows leave fewer than ten test frauds in each age group (as 50,000 did in the first-hour report:
    'equalised-odds difference 0.000' with recalls 0.571 and 1.000 side by side)."""
    test = windows.frames["test"]
    result = fairness.run_fairness(test, trained.booster, trained.threshold, "age_group")
    assert result.fairness is not None
    frauds = [v["frauds"] for v in result.fairness.by_group.values()]
    assert max(frauds) < fairness.MIN_GROUP_FRAUDS, frauds
    assert np.isnan(result.fairness.recall_gap)
    groups = result.fairness.to_dict()["by_group"]

    lines = _fairness_lines(result.metrics(), groups)
    text = " ".join(line.strip() for line in lines)
    assert "equalised-odds difference" in text
    assert "recall not compared: every group had fewer than 10 test frauds" in text
    assert "false-positive-rate gap alone" in text
    page = render_html(_facts(model={}, fairness=result.metrics(), fairness_groups=groups))
    assert "Recall not compared: every group had fewer than 10 test frauds" in page
    assert "recall not compared" in result.note


def test_a_partial_recall_comparison_names_the_groups_left_out() -> None:
    groups = {"18-34": {"frauds": 40.0}, "35-59": {"frauds": 31.0}, "60+": {"frauds": 7.0}}
    assert (
        fairness.recall_comparison(groups, 10)
        == "recall compared for 18-34, 35-59 only: 60+ had fewer than 10 test frauds"
    )
    assert fairness.recall_comparison({"a": {"frauds": 12.0}, "b": {"frauds": 3.0}}, 10).startswith(
        "recall not compared: every group but a had fewer than 10"
    )
    assert fairness.recall_comparison({"a": {"frauds": 12.0}, "b": {"frauds": 10.0}}, 10) == ""
