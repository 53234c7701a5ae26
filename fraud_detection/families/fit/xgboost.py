"""Fitting the XGBoost family: one booster (:func:`fraud_detection.boosting.train_booster`) as a candidate, and
the space the tuner searches for it (:data:`SEARCH_SPACE`, docs/tuning.md)."""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import xgboost as xgb

from fraud_detection import boosting
from fraud_detection.families import XGBOOST
from fraud_detection.families.fit.base import FamilyFit, FitData
from fraud_detection.families.xgboost import XGBoostModel
from fraud_detection.metrics import Detail
from fraud_detection.tuning.space import Parameter, SearchSpace, Tunable, Value

SEARCH_SPACE = SearchSpace(
    family=XGBOOST,
    parameters=(
        Parameter(name="max_depth", kind="int", low=2, high=10),
        Parameter(name="learning_rate", kind="float", low=0.02, high=0.3, log=True),
        Parameter(name="min_child_weight", kind="float", low=0.1, high=30.0, log=True),
        Parameter(name="subsample", kind="float", low=0.5, high=1.0),
        Parameter(name="colsample_bytree", kind="float", low=0.3, high=1.0),
    ),
)
"""XGBoost's tuned knobs (each named as its :class:`~fraud_detection.config.TrainKnobs` field); the number of
rounds stays with early stopping."""

REPORT_EVERY = 10
"""Rounds between the validation AUPRC reports a tuning trial is pruned on."""


class _Report(xgb.callback.TrainingCallback):
    """Hands the validation AUPRC to the tuner every :data:`REPORT_EVERY` rounds (the tuner may raise to prune)."""

    def __init__(self, report: Callable[[int, float], None]) -> None:
        self.report = report

    def after_iteration(self, model: Any, epoch: int, evals_log: Any) -> bool:
        if (epoch + 1) % REPORT_EVERY == 0:
            self.report(epoch + 1, float(evals_log["validation"]["aucpr"][-1]))
        return False


def fit(data: FitData, params: boosting.TrainParams, report: Callable[[int, float], None] | None = None) -> FamilyFit:
    """XGBoost with early stopping on validation AUPRC (see :func:`fraud_detection.boosting.train_booster`);
    ``report(round, auprc)`` hears the validation AUPRC every :data:`REPORT_EVERY` rounds."""
    result = boosting.train_booster(
        data.x_train,
        data.y_train,
        data.x_valid,
        data.y_valid,
        params,
        log_every=0 if report else 50,
        sample_weight=data.sample_weight,
        callbacks=[_Report(report)] if report else (),
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


def _apply(params: boosting.TrainParams, values: Mapping[str, Value]) -> boosting.TrainParams:
    return params.model_copy(update=dict(values))


def _current(params: boosting.TrainParams) -> dict[str, Value]:
    return {p.name: getattr(params, p.name) for p in SEARCH_SPACE.parameters}


TUNING = Tunable(space=SEARCH_SPACE, apply=_apply, current=_current, fit=fit, warmup_steps=30)
"""How the tuner fits XGBoost: values are train knobs by name; pruning waits 30 rounds."""
