"""Incremental lift of a campaign: treated arms against the held-out control group. Pure.

Counts are intent-to-treat (docs/experiments.md): every assignment is one unit, whether the
email was sent, opened or not. For each group we know how many were assigned, how many
converted, their revenue and the sum of each unit's revenue squared.

* Conversion: the absolute lift is the difference of the two rates, with a 95% interval by
  Newcombe's hybrid score method (Newcombe 1998, method 10: the Wilson interval of each rate,
  combined). Retargeting rates are a few percent, where the unpooled Wald interval is too
  narrow and can reach below 0 (its coverage falls well under 95% for small counts); the
  Wilson-based interval keeps its coverage there and is still a closed form. The p-value is
  the usual two-sided two-proportion z-test (pooled rate under "no difference").
* Revenue per recipient: the difference of the two means, with Welch's interval (unequal
  variances; a few large orders make the treated and control variances differ).
* Too small to conclude: fewer than MIN_GROUP units in a group, or fewer than
  MIN_EXPECTED expected conversions or non-conversions in a group at the pooled rate (the
  normal approximations behind both intervals need them).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from statistics import NormalDist

CONFIDENCE = 0.95
Z = NormalDist().inv_cdf(1 - (1 - CONFIDENCE) / 2)  # 1.959964
MIN_GROUP = 100
MIN_EXPECTED = 5.0


@dataclass(frozen=True)
class Group:
    assigned: int
    converted: int
    revenue: float = 0.0
    revenue_squared: float = 0.0  # the sum over units of (that unit's revenue)²

    @property
    def rate(self) -> float:
        return self.converted / self.assigned if self.assigned else 0.0

    @property
    def revenue_per_recipient(self) -> float:
        return self.revenue / self.assigned if self.assigned else 0.0


@dataclass(frozen=True)
class Interval:
    estimate: float
    low: float
    high: float


@dataclass(frozen=True)
class Lift:
    treated_rate: float
    control_rate: float
    lift: float  # treated_rate - control_rate (absolute, in rate units)
    lift_ci_low: float
    lift_ci_high: float
    relative_lift: float | None  # lift / control_rate; None when the control never converted
    p_value: float
    revenue: Interval | None  # revenue per recipient, treated - control; None below 2 units a group
    conclusion: str  # too_small | no_difference | positive | negative
    why: str  # the conclusion in words


def wilson(successes: int, n: int, z: float = Z) -> tuple[float, float]:
    """The Wilson score interval of a proportion."""
    if n == 0:
        return 0.0, 1.0
    p = successes / n
    centre = (p + z * z / (2 * n)) / (1 + z * z / n)
    half = z / (1 + z * z / n) * math.sqrt(p * (1 - p) / n + z * z / (4 * n * n))
    return max(0.0, centre - half), min(1.0, centre + half)


def newcombe(treated: Group, control: Group, z: float = Z) -> tuple[float, float]:
    """Newcombe's hybrid score interval of treated.rate - control.rate."""
    p1, p2 = treated.rate, control.rate
    l1, u1 = wilson(treated.converted, treated.assigned, z)
    l2, u2 = wilson(control.converted, control.assigned, z)
    d = p1 - p2
    return d - math.hypot(p1 - l1, u2 - p2), d + math.hypot(u1 - p1, p2 - l2)


def two_proportion_p_value(treated: Group, control: Group) -> float:
    n1, n2 = treated.assigned, control.assigned
    if not n1 or not n2:
        return 1.0
    pooled = (treated.converted + control.converted) / (n1 + n2)
    se = math.sqrt(pooled * (1 - pooled) * (1 / n1 + 1 / n2))
    if se == 0:
        return 1.0  # both groups all converted or none did: no evidence of a difference
    z = (treated.rate - control.rate) / se
    return 2 * (1 - NormalDist().cdf(abs(z)))


def t_quantile(df: float, z: float = Z) -> float:
    """Student's t quantile matching the normal quantile `z`, by the Cornish-Fisher expansion
    (Abramowitz & Stegun 26.7.5): within 1e-4 of the exact value for df >= 10, and MIN_GROUP
    keeps Welch's df above 99. The stdlib has no t distribution; scipy is not worth adding for it."""
    g1 = (z**3 + z) / 4
    g2 = (5 * z**5 + 16 * z**3 + 3 * z) / 96
    g3 = (3 * z**7 + 19 * z**5 + 17 * z**3 - 15 * z) / 384
    g4 = (79 * z**9 + 776 * z**7 + 1482 * z**5 - 1920 * z**3 - 945 * z) / 92160
    return z + g1 / df + g2 / df**2 + g3 / df**3 + g4 / df**4


def welch(treated: Group, control: Group) -> Interval | None:
    """Welch's interval of the difference in revenue per recipient."""
    if treated.assigned < 2 or control.assigned < 2:
        return None
    parts = [_variance_of_mean(g) for g in (treated, control)]
    diff = treated.revenue_per_recipient - control.revenue_per_recipient
    se2 = parts[0] + parts[1]
    if se2 == 0:
        return Interval(diff, diff, diff)  # no spread at all (e.g. nobody bought)
    df = se2**2 / sum(v * v / (g.assigned - 1) for v, g in zip(parts, (treated, control), strict=True))
    half = t_quantile(df) * math.sqrt(se2)
    return Interval(diff, diff - half, diff + half)


def _variance_of_mean(group: Group) -> float:
    n, mean = group.assigned, group.revenue_per_recipient
    variance = max(0.0, (group.revenue_squared - n * mean * mean) / (n - 1))
    return variance / n


def too_small(treated: Group, control: Group) -> str | None:
    """Why the sample can't support a conclusion yet, or None."""
    for name, group in (("treated", treated), ("control", control)):
        if group.assigned < MIN_GROUP:
            return f"{name} has {group.assigned} assignments, fewer than {MIN_GROUP}"
    total = treated.assigned + control.assigned
    pooled = (treated.converted + control.converted) / total
    for name, group in (("treated", treated), ("control", control)):
        expected = min(pooled, 1 - pooled) * group.assigned
        if expected < MIN_EXPECTED:
            return (
                f"{name} expects {expected:.1f} conversions at the pooled rate, fewer than {MIN_EXPECTED:g}"
            )
    return None


def lift(treated: Group, control: Group) -> Lift:
    low, high = newcombe(treated, control)
    diff = treated.rate - control.rate
    small = too_small(treated, control)
    if small is not None:
        conclusion, why = "too_small", f"too small to conclude: {small}"
    elif low <= 0 <= high:
        conclusion, why = "no_difference", "the 95% interval includes 0: no difference shown"
    elif low > 0:
        conclusion, why = "positive", "the emails raised conversion (95% interval above 0)"
    else:
        conclusion, why = "negative", "the emails lowered conversion (95% interval below 0)"
    return Lift(
        treated_rate=treated.rate,
        control_rate=control.rate,
        lift=diff,
        lift_ci_low=low,
        lift_ci_high=high,
        relative_lift=diff / control.rate if control.rate else None,
        p_value=two_proportion_p_value(treated, control),
        revenue=welch(treated, control),
        conclusion=conclusion,
        why=why,
    )


def pooled(groups: list[Group]) -> Group:
    """Several arms as one group (all variants together against the control)."""
    return Group(
        assigned=sum(g.assigned for g in groups),
        converted=sum(g.converted for g in groups),
        revenue=sum(g.revenue for g in groups),
        revenue_squared=sum(g.revenue_squared for g in groups),
    )
