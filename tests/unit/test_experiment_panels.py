"""The dashboard's lift interval is the funnel's: the PromQL, with the counters' totals put in,
gives the hand-worked example's numbers (docs/experiments.md)."""

from __future__ import annotations

import math

import pytest

from retarget.ops.experiment_panels import CONTROL, TREATED, _total, lift, lift_ci


def evaluate(promql: str, totals: dict[str, float]) -> float:
    for text, value in totals.items():
        promql = promql.replace(text, repr(value))
    assert "increase" not in promql, "every counter total replaced"
    return float(eval(promql.replace("^", "**"), {"sqrt": math.sqrt}))


def test_the_dashboards_lift_and_interval_match_the_hand_worked_example():
    totals = {
        _total("assigned", TREATED): 2000.0,
        _total("conversions", TREATED): 120.0,
        _total("assigned", CONTROL): 2000.0,
        _total("conversions", CONTROL): 80.0,
    }
    assert evaluate(lift(), totals) == pytest.approx(0.02)
    assert evaluate(lift_ci("low"), totals) == pytest.approx(0.0064971, abs=1e-6)
    assert evaluate(lift_ci("high"), totals) == pytest.approx(0.0336785, abs=1e-6)
