"""Model families: what the bake-off trains, how each is saved in its own format, scored and explained.

* :mod:`fraud_detection.families.models` loads, saves, scores and explains a trained model of any family. It
  needs numpy (and XGBoost for the XGBoost family) and nothing else, so the serving image can use it through
  the model-directory contract (:mod:`fraud_detection.modeldir`).
* :mod:`fraud_detection.families.fit` trains each family and fits the blend (scikit-learn, the training
  stack); serving never imports it.
"""

from __future__ import annotations

XGBOOST = "xgboost"
MLP = "mlp"
BLEND = "blend"

FAMILIES: tuple[str, ...] = (XGBOOST, MLP)
"""The families the train step can fit (one task per family); the blend is formed from them afterwards."""

CANDIDATES: tuple[str, ...] = (*FAMILIES, BLEND)
"""Everything the select step may pick."""
