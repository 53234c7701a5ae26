"""The XGBoost family's model: a calibrated booster, saved as ``model.ubj`` (XGBoost's UBJSON format).

Its output is the calibrated fraud probability. Explanations are exact TreeSHAP (``pred_contribs``) in log-odds;
``base_value`` is the expected log-odds.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

import numpy as np

from fraud_detection.families import XGBOOST
from fraud_detection.families.base import ModelFileError
from fraud_detection.schema import FEATURES

if TYPE_CHECKING:
    import xgboost as xgb

XGBOOST_FILE = "model.ubj"


class XGBoostModel:
    """A calibrated XGBoost booster."""

    family = XGBOOST

    def __init__(self, booster: xgb.Booster) -> None:
        self.booster = booster

    def logit(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(x, validate_features=False, predict_type="margin"), np.float64)

    def predict_proba(self, x: np.ndarray) -> np.ndarray:
        return np.asarray(self.booster.inplace_predict(x, validate_features=False), dtype=np.float64)

    def explain(self, x: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        import xgboost as xgb

        matrix = xgb.DMatrix(x, feature_names=self.booster.feature_names)
        contributions = np.asarray(self.booster.predict(matrix, pred_contribs=True), dtype=np.float64)
        return contributions[:, :-1], contributions[:, -1]

    def files(self) -> list[str]:
        return [XGBOOST_FILE]

    def save(self, directory: Path) -> None:
        self.booster.save_model(str(Path(directory) / XGBOOST_FILE))

    def set_threads(self, threads: int) -> None:
        self.booster.set_param({"nthread": threads})

    @classmethod
    def load(cls, directory: Path, n_features: int = len(FEATURES)) -> XGBoostModel:
        """Read ``model.ubj`` (a booster over ``n_features`` inputs); a missing or unreadable file raises
        :class:`ModelFileError` naming it."""
        import xgboost as xgb

        path = Path(directory) / XGBOOST_FILE
        if not path.is_file():
            raise ModelFileError(f"{path}: model file is missing")
        booster = xgb.Booster()
        try:
            booster.load_model(str(path))
        except xgb.core.XGBoostError as error:
            raise ModelFileError(f"{path}: not a readable XGBoost model: {str(error).splitlines()[0]}") from error
        if booster.num_features() != n_features:
            raise ModelFileError(f"{path}: booster expects {booster.num_features()} features, not {n_features}")
        return cls(booster)
