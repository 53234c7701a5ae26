"""Model families: what the bake-off fits, each saved in its own format, scored and explained.

* :mod:`~fraud_detection.families.xgboost`, :mod:`~fraud_detection.families.mlp`,
  :mod:`~fraud_detection.families.blend`: one module per family's trained model, behind the protocol of
  :mod:`~fraud_detection.families.base`; :mod:`~fraud_detection.families.models` loads any of them. They need
  numpy (and XGBoost for the XGBoost family) and nothing else, so the serving image can use them through the
  model-directory contract (:mod:`fraud_detection.modeldir`).
* :mod:`fraud_detection.families.fit` fits each family and the blend (scikit-learn, the training stack), one
  module per family too; serving never imports it.
"""

from __future__ import annotations

XGBOOST = "xgboost"
MLP = "mlp"
BLEND = "blend"

FAMILIES: tuple[str, ...] = (XGBOOST, MLP)
"""The families the train step can fit (one task per family); the blend is formed from them afterwards."""

CANDIDATES: tuple[str, ...] = (*FAMILIES, BLEND)
"""Everything the select step may pick."""
