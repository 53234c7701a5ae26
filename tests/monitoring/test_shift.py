"""Skew and drift of served traffic: shifting one feature raises that feature's alert and no other."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest

from fraud_detection.monitoring import shift

COLUMNS = [f"V{i}" for i in range(1, 29)] + ["Amount", "score"]


def _traffic(n: int, seed: int) -> pd.DataFrame:
    rng = np.random.default_rng(seed)
    frame = pd.DataFrame(rng.normal(size=(n, len(COLUMNS) - 2)), columns=COLUMNS[:-2])
    frame["Amount"] = rng.lognormal(3.0, 1.2, n)
    frame["score"] = rng.beta(0.3, 3.0, n)
    return frame


@pytest.mark.parametrize("moved", ["V3", "V17", "Amount", "score"])
def test_shifting_one_feature_raises_its_skew_and_drift_alerts_and_no_other(moved: str) -> None:
    training, previous, served = _traffic(20000, 0), _traffic(5000, 1), _traffic(5000, 2)
    served[moved] = served[moved] + served[moved].std() * 0.5  # half a standard deviation
    for kind, reference in (("skew", shift.Reference.of(training)), ("drift", shift.Reference.of(previous))):
        found = shift.shifts(reference, served, kind)  # type: ignore[arg-type]
        assert [s.column for s in found if s.alert] == [moved], [(s.column, round(s.psi, 4)) for s in found]
        assert {s.kind for s in found} == {kind} and len(found) == len(COLUMNS)


def test_unshifted_traffic_stays_far_below_the_threshold() -> None:
    found = shift.shifts(shift.Reference.of(_traffic(20000, 0)), _traffic(5000, 3), "skew")
    assert max(s.psi for s in found) < shift.DEFAULT_THRESHOLD / 10


def test_the_reference_travels_as_json_and_gives_the_same_psi() -> None:
    reference = shift.Reference.of(_traffic(5000, 0))
    again = shift.Reference.model_validate_json(reference.model_dump_json())
    served = _traffic(1000, 4)
    assert shift.shifts(again, served, "skew") == shift.shifts(reference, served, "skew")


def test_a_per_column_threshold_replaces_the_default() -> None:
    served = _traffic(5000, 2)
    served["V1"] += 0.3
    found = {s.column: s for s in shift.shifts(shift.Reference.of(_traffic(20000, 0)), served, "skew", {"V1": 1.0})}
    assert found["V1"].threshold == 1.0 and not found["V1"].alert
