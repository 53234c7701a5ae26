"""The linear baseline every candidate must clearly beat (not a candidate itself)."""

from __future__ import annotations

import numpy as np


def logistic_baseline(x_train: np.ndarray, y_train: np.ndarray, x_eval: np.ndarray, seed: int = 42) -> np.ndarray:
    """Scores of a standardised logistic regression: the linear baseline the booster must clearly beat."""
    from sklearn.linear_model import LogisticRegression
    from sklearn.pipeline import make_pipeline
    from sklearn.preprocessing import StandardScaler

    model = make_pipeline(StandardScaler(), LogisticRegression(max_iter=2000, random_state=seed))
    model.fit(x_train, y_train)
    return np.asarray(model.predict_proba(x_eval)[:, 1], dtype=np.float64)
