"""What the bake-off's winner is measured against besides its own test metrics: a logistic baseline, the test
fraud rate, the generator's true probabilities (synthetic data) and, for raw transactions, card precision@k."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from fraud_detection import data, data_transactions
from fraud_detection.families.fit import logistic_baseline
from fraud_detection.metrics import Run, card_precision_at_k
from fraud_detection.schema import TIME
from fraud_detection.synth import true_probability

BASELINE_MAX_ROWS = 250_000
"""The logistic baseline trains on every fraud row plus legitimate rows up to this total (rank metrics
such as AUPRC are unaffected by the sampling; it keeps the baseline to seconds at any data size)."""


def reference_metrics(
    train_path: Path,
    x_test: np.ndarray,
    y_test: np.ndarray,
    seed: int,
    test_auprc: float,
    oracle_label_noise: float | None,
    synthetic_setting: str,
    oracle_test_auprc: float | None = None,
) -> dict[str, float]:
    """What the winner's test AUPRC is measured against: a logistic baseline trained on a sample of the training
    window, the test fraud rate and, for synthetic data, the true probabilities' AUPRC (the best achievable):
    computed here from the public generator's ``oracle_label_noise``, or as ``oracle_test_auprc`` gives it."""
    from sklearn.metrics import average_precision_score

    x_sample, y_sample = data.read_xy(train_path, BASELINE_MAX_ROWS, seed)
    baseline = logistic_baseline(x_sample, y_sample, x_test, seed)
    del x_sample, y_sample
    metrics = {
        Run.BASELINE_LR_TEST_AUPRC.value: float(average_precision_score(y_test, baseline)),
        Run.TEST_FRAUD_RATE.value: float(y_test.mean()),
    }
    if oracle_label_noise is not None:
        oracle = true_probability(x_test, oracle_label_noise, synthetic_setting)
        oracle_test_auprc = float(average_precision_score(y_test, oracle))
    if oracle_test_auprc is not None:
        metrics[Run.ORACLE_TEST_AUPRC.value] = oracle_test_auprc
        metrics[Run.AUPRC_VS_ORACLE.value] = test_auprc / oracle_test_auprc
    return metrics


def card_metrics(test_path: Path, y_test: np.ndarray, scores: np.ndarray, k: int) -> dict[str, float]:
    """The winner's test card precision@k and k, for a raw-transaction window with a card key; else none."""
    card = data_transactions.CARD_COLUMN
    if card not in data.window_columns(test_path):
        return {}
    keys = data.read_window(test_path, columns=[TIME, card])
    value = card_precision_at_k(keys[card].to_numpy(), keys[TIME].to_numpy(), y_test, scores, k)
    return {Run.TEST_CARD_PRECISION_AT_K.value: value, Run.CARD_PRECISION_K.value: float(k)}


__all__ = ["BASELINE_MAX_ROWS", "card_metrics", "reference_metrics"]
