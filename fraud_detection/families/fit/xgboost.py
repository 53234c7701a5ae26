"""Fitting the XGBoost family: one booster (:func:`fraud_detection.boosting.train_booster`) as a candidate."""

from __future__ import annotations

from fraud_detection import boosting
from fraud_detection.families import XGBOOST
from fraud_detection.families.fit.base import FamilyFit, FitData
from fraud_detection.families.xgboost import XGBoostModel
from fraud_detection.metrics import Detail


def fit(data: FitData, params: boosting.TrainParams) -> FamilyFit:
    """XGBoost with early stopping on validation AUPRC (see :func:`fraud_detection.boosting.train_booster`)."""
    result = boosting.train_booster(
        data.x_train, data.y_train, data.x_valid, data.y_valid, params, sample_weight=data.sample_weight
    )
    return xgboost_fit(result)


def xgboost_fit(result: boosting.TrainResult) -> FamilyFit:
    """A trained booster (from :func:`fraud_detection.boosting.train_booster` or the Dask engine's
    :func:`~fraud_detection.engines.dask_boosting.train_booster_dask`) as the bake-off's XGBoost candidate."""
    return FamilyFit(
        family=XGBOOST,
        model=XGBoostModel(result.booster),
        threshold=result.threshold,
        validation_scores=result.validation_scores,
        seconds=result.seconds,
        details={
            Detail.BEST_ITERATION.value: float(result.best_iteration),
            Detail.SCALE_POS_WEIGHT.value: result.scale_pos_weight,
        },
    )
