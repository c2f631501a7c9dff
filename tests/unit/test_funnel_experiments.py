"""The funnel's experiment fields from counter samples: arms, holdout, lift, and when there is none."""

from __future__ import annotations

import pytest

from retarget.cli.funnel_experiments import lift_text
from retarget.common.experiment_funnel import (
    ASSIGNED,
    CONVERTED,
    REVENUE,
    REVENUE_SQUARED,
    arms,
    experiment_fields,
)


def samples(arm: str, assigned: float, converted: float, revenue: dict[str, float] | None = None):
    labels = {"workspace": "ws", "campaign": "abandoned_cart", "arm": arm}
    out = [(ASSIGNED, labels, assigned), (CONVERTED, labels, converted)]
    for currency, amount in (revenue or {}).items():
        money = {**labels, "currency": currency}
        out += [(REVENUE, money, amount), (REVENUE_SQUARED, money, amount * 50)]  # orders of 50
    return out


def fields_of(*groups) -> dict:
    found = arms([s for g in groups for s in g])
    return experiment_fields(found[("ws", "abandoned_cart")])


def test_treated_arms_pool_against_the_holdout_as_the_hand_worked_example():
    fields = fields_of(
        samples("a", 1000, 60, {"EUR": 3000}),
        samples("b", 1000, 60, {"EUR": 3000}),
        samples("holdout", 2000, 80, {"EUR": 4000}),
    )
    assert set(fields["variants"]) == {"a", "b"}
    assert fields["holdout"]["assigned"] == 2000 and fields["holdout"]["conversion_rate"] == 0.04
    # docs/experiments.md: +2 points (0.0064971 to 0.0336785), revenue +1.00 (0.32 to 1.68)
    assert (fields["lift"], fields["lift_ci_low"], fields["lift_ci_high"]) == pytest.approx(
        (0.02, 0.006497, 0.033679), abs=1e-6
    )
    assert (
        fields["revenue_lift"],
        fields["revenue_lift_ci_low"],
        fields["revenue_lift_ci_high"],
    ) == pytest.approx((1.0, 0.3249, 1.6751), abs=1e-4)
    assert fields["revenue_currency"] == "EUR" and fields["lift_conclusion"] == "positive"
    assert "+2.00 pts (95% CI +0.65 to +3.37)" in lift_text(fields)


def test_revenue_in_several_currencies_gives_no_revenue_lift():
    fields = fields_of(
        samples("a", 1000, 60, {"EUR": 3000, "USD": 10}), samples("holdout", 1000, 40, {"EUR": 2000})
    )
    assert fields["revenue_lift"] is None and fields["revenue_currency"] is None
    assert fields["lift"] is not None


def test_without_a_holdout_there_is_no_lift_and_it_says_why():
    fields = fields_of(samples("default", 500, 20))
    assert fields["holdout"] is None and fields["lift"] is None
    assert fields["lift_conclusion"] == "no_holdout"
    assert lift_text(fields) == "no held-out control group to compare with"


def test_an_arm_the_campaign_no_longer_has_is_neither_treated_nor_control():
    fields = fields_of(samples("a", 1000, 60), samples("_other", 5000, 0), samples("holdout", 1000, 40))
    assert set(fields["variants"]) == {"a"}
    assert fields["lift"] == pytest.approx(0.02)


def test_a_small_experiment_is_too_small_to_conclude():
    fields = fields_of(samples("a", 300, 30), samples("holdout", 30, 1))
    assert fields["lift_conclusion"] == "too_small" and "too small to conclude" in lift_text(fields)


def test_the_global_holdout_is_shown_apart_and_never_counted_as_treated():
    fields = fields_of(
        samples("a", 1000, 60), samples("global_holdout", 400, 1), samples("holdout", 1000, 40)
    )
    assert set(fields["variants"]) == {"a"} and fields["global_holdout"]["assigned"] == 400
    assert fields["lift"] == pytest.approx(0.02)


def test_more_conversions_than_assignments_in_the_range_is_not_a_crash():
    # a range's conversions may belong to assignments made before it (or counted by a worker
    # whose assigned counter restarted): converted > assigned must not take `retarget funnel` down
    fields = fields_of(samples("default", 150, 20), samples("holdout", 1, 2))
    assert fields["holdout"]["converted"] <= fields["holdout"]["assigned"]
    assert fields["holdout"]["conversion_rate"] <= 1
    assert fields["lift_conclusion"] == "too_small"
    assert lift_text(fields)


def test_a_non_finite_sample_is_not_a_crash_nor_nan_in_json():
    import json

    nan, inf = float("nan"), float("inf")
    fields = fields_of(samples("default", nan, 3, {"EUR": inf}), samples("holdout", 200, inf, {"EUR": 10}))
    json.dumps(fields, allow_nan=False)  # no NaN or Infinity in the JSON
