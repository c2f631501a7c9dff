"""The lift arithmetic against the example worked by hand in docs/experiments.md."""

from __future__ import annotations

import pytest

from retarget.common.lift import Group, lift, newcombe, pooled, t_quantile, too_small, welch, wilson

# 2,000 assignments per group; treated: 120 conversions, control: 80; every order is 50.00,
# so revenue = 50 x conversions and the sum of squares = 2,500 x conversions.
TREATED = Group(assigned=2000, converted=120, revenue=6000.0, revenue_squared=300_000.0)
CONTROL = Group(assigned=2000, converted=80, revenue=4000.0, revenue_squared=200_000.0)


def test_wilson_intervals_of_each_rate_by_hand():
    # z = 1.959964, z² = 3.841459, z²/n = 0.0019207, z²/(2n) = 0.00096036, z²/(4n²) = 2.4009e-7
    # treated p = 0.06:  centre = (0.06 + 0.00096036) / 1.0019207 = 0.0608435
    #   half = 1.959964 / 1.0019207 × √(0.06 × 0.94 / 2000 + 2.4009e-7) = 1.956207 × 0.0053329 = 0.0104323
    assert wilson(120, 2000) == pytest.approx((0.0504112, 0.0712758), abs=1e-6)
    # control p = 0.04:  centre = 0.04096036 / 1.0019207 = 0.0408818
    #   half = 1.956207 × √(0.04 × 0.96 / 2000 + 2.4009e-7) = 1.956207 × 0.0044089 = 0.0086250
    assert wilson(80, 2000) == pytest.approx((0.0322567, 0.0495069), abs=1e-6)


def test_newcombe_interval_of_the_difference_by_hand():
    # d = 0.06 - 0.04 = 0.02
    # low  = d - √((0.06 - 0.0504112)² + (0.0495069 - 0.04)²) = 0.02 - √(9.1945e-5 + 9.0381e-5) = 0.0064971
    # high = d + √((0.0712758 - 0.06)² + (0.04 - 0.0322567)²) = 0.02 + √(1.27143e-4 + 5.9959e-5) = 0.0336785
    assert newcombe(TREATED, CONTROL) == pytest.approx((0.0064971, 0.0336785), abs=1e-6)


def test_lift_and_p_value_by_hand():
    result = lift(TREATED, CONTROL)
    assert result.lift == pytest.approx(0.02)
    assert result.relative_lift == pytest.approx(0.5)  # 6% against 4%: half as many again
    # pooled p = 200 / 4000 = 0.05; se = √(0.05 × 0.95 × (1/2000 + 1/2000)) = 0.0068920
    # z = 0.02 / 0.0068920 = 2.9019; p = 2 × (1 - Φ(2.9019)) = 0.00371
    assert result.p_value == pytest.approx(0.003709, abs=1e-5)
    assert (result.lift_ci_low, result.lift_ci_high) == pytest.approx((0.0064971, 0.0336785), abs=1e-6)
    assert result.conclusion == "positive"


def test_welch_interval_of_revenue_per_recipient_by_hand():
    # treated mean 3.00, variance (300,000 - 2000 × 3²) / 1999 = 141.07054, over n: 0.0705353
    # control mean 2.00, variance (200,000 - 2000 × 2²) / 1999 =  96.04802, over n: 0.0480240
    # se = √(0.0705353 + 0.0480240) = 0.3443244
    # df = 0.1185593² / (0.0705353² / 1999 + 0.0480240² / 1999) = 3858.9; t(0.975, 3858.9) = 1.96057
    # 1.00 ± 1.96057 × 0.3443244 = 1.00 ± 0.675075
    interval = welch(TREATED, CONTROL)
    assert interval is not None
    assert (interval.estimate, interval.low, interval.high) == pytest.approx(
        (1.0, 0.324925, 1.675075), abs=1e-5
    )


def test_t_quantile_matches_the_tables():
    # Student's t, two-sided 95%: 2.228139 (df 10), 2.042272 (df 30), 1.984217 (df 99)
    assert t_quantile(10) == pytest.approx(2.228139, abs=1e-4)
    assert t_quantile(30) == pytest.approx(2.042272, abs=1e-5)
    assert t_quantile(99) == pytest.approx(1.984217, abs=1e-5)


def test_an_interval_spanning_zero_shows_no_difference():
    result = lift(Group(2000, 90), Group(2000, 80))
    assert result.lift_ci_low < 0 < result.lift_ci_high
    assert result.conclusion == "no_difference"


def test_a_lower_treated_rate_is_negative():
    assert lift(CONTROL, TREATED).conclusion == "negative"


def test_too_few_assignments_is_too_small_whatever_the_rates():
    result = lift(Group(99, 50), Group(2000, 80))
    assert result.conclusion == "too_small"
    assert "treated has 99 assignments" in result.why


def test_too_few_expected_conversions_is_too_small():
    # pooled rate 6 / 400 = 0.015: each group of 200 expects 3 conversions, fewer than 5
    reason = too_small(Group(200, 5), Group(200, 1))
    assert reason is not None and "expects 3.0 conversions" in reason


def test_a_control_that_never_converted_has_no_relative_lift():
    assert lift(Group(500, 10), Group(500, 0)).relative_lift is None


def test_revenue_interval_needs_two_units_a_group():
    assert welch(Group(1, 1, 10.0, 100.0), CONTROL) is None


def test_no_spread_is_a_point_interval():
    interval = welch(Group(200, 0), Group(200, 0))
    assert interval is not None and interval.low == interval.high == 0.0


def test_pooled_adds_arms():
    both = pooled([Group(10, 1, 5.0, 25.0), Group(20, 2, 10.0, 50.0)])
    assert both == Group(30, 3, 15.0, 75.0)


def test_too_few_expected_non_conversions_is_too_small_too():
    # almost everyone converts: the normal approximation needs 5 expected non-conversions as
    # much as 5 expected conversions
    result = lift(Group(assigned=200, converted=199), Group(assigned=200, converted=196))
    assert result.conclusion == "too_small" and "fewer than 5" in result.why
