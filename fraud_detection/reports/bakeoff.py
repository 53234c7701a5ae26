"""The bake-off as Markdown (KFP UI, MLflow): every candidate on validation, which decides, and test."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from fraud_detection.metrics import TEST, VALIDATION, Detail, Metric, Run, on

FAMILY = "family"
WINNER = "winner"
"""A bake-off row's family and whether it won; its numbers are keyed by :mod:`fraud_detection.metrics`
(``validation_auprc``, ``test_auprc``, ``test_roc_auc``, ``train_seconds``)."""


def bakeoff_markdown(rows: Sequence[Mapping[str, Any]], metrics: Mapping[str, float]) -> str:
    """The bake-off table: one row per candidate, then the baseline and, for synthetic data, the best achievable."""
    lines = [
        "# Model bake-off",
        "",
        "The winner has the best **validation** AUPRC; the test window is only reported.",
        "",
        "| family | validation AUPRC | test AUPRC | test ROC AUC | train s | |",
        "|---|---|---|---|---|---|",
    ]
    for row in rows:
        lines.append(
            f"| {row[FAMILY]} | {row[on(VALIDATION, Metric.AUPRC)]:.4f} | {row[on(TEST, Metric.AUPRC)]:.4f} | "
            f"{row[on(TEST, Metric.ROC_AUC)]:.4f} | {row[Detail.TRAIN_SECONDS]:.1f} | "
            f"{'**winner**' if row[WINNER] else ''} |"
        )
    lines.append("")
    lines.append(f"Logistic-regression baseline, test AUPRC: {metrics[Run.BASELINE_LR_TEST_AUPRC]:.4f}.")
    if Run.TEST_CARD_PRECISION_AT_K in metrics:
        k = int(metrics[Run.CARD_PRECISION_K])
        lines.append(f"The winner's card precision@{k} per day on test: {metrics[Run.TEST_CARD_PRECISION_AT_K]:.4f}.")
    if Run.ORACLE_TEST_AUPRC in metrics:
        lines.append(f"Best achievable (true probabilities), test AUPRC: {metrics[Run.ORACLE_TEST_AUPRC]:.4f}.")
    return "\n".join(lines) + "\n"
