"""The funnel's experiment fields: per campaign, each arm's intent-to-treat counts and the lift
of the treated arms over the held-out control group (lift.py). Pure, like funnel.py: the
samples come from Prometheus or the services' /metrics.

Fields (`retarget funnel --json`, docs/experiments.md): `variants` (per treated arm: assigned,
converted, conversion_rate, revenue, revenue_per_recipient, and its own lift over the
holdout), `holdout` (the control group's counts, or null without one), `lift`,
`lift_ci_low`, `lift_ci_high` (all treated arms together against the holdout: the campaign's
effect), `relative_lift`, `p_value`, `lift_conclusion`, `lift_why`, and `revenue_lift`,
`revenue_lift_ci_low`, `revenue_lift_ci_high` (revenue per recipient; null when the orders
were in several currencies, which are never added up).
"""

from __future__ import annotations

import math
from collections import defaultdict
from collections.abc import Iterable
from typing import Any

from retarget.common.lift import Group, lift, pooled

ASSIGNED = "retarget_segmenter_experiment_assigned_total"
CONVERTED = "retarget_segmenter_experiment_conversions_total"
REVENUE = "retarget_segmenter_experiment_revenue_total"
REVENUE_SQUARED = "retarget_segmenter_experiment_revenue_squared_total"
EXPERIMENT_METRICS = (ASSIGNED, CONVERTED, REVENUE, REVENUE_SQUARED)
HOLDOUT = "holdout"
OTHER = "_other"  # arms a campaign no longer has: neither treated nor control now
GLOBAL_HOLDOUT = "global_holdout"  # the workspace's control group: shown, not in this lift

Sample = tuple[str, dict[str, str], float]
Campaign = tuple[str, str]  # (workspace, campaign)


class _Arm:
    def __init__(self) -> None:
        self.assigned = self.converted = 0.0
        self.revenue: dict[str, float] = defaultdict(float)  # by currency
        self.revenue_squared: dict[str, float] = defaultdict(float)


def arms(samples: Iterable[Sample]) -> dict[Campaign, dict[str, _Arm]]:
    found: dict[Campaign, dict[str, _Arm]] = defaultdict(lambda: defaultdict(_Arm))
    for name, labels, value in samples:
        if name not in EXPERIMENT_METRICS or not math.isfinite(value):
            continue  # a NaN or infinite sample would make the lift NaN (invalid JSON) or raise
        arm = found[(labels.get("workspace", "?"), labels.get("campaign", "?"))][labels.get("arm", OTHER)]
        currency = labels.get("currency", "unknown")
        if name == ASSIGNED:
            arm.assigned += value
        elif name == CONVERTED:
            arm.converted += value
        elif name == REVENUE:
            arm.revenue[currency] += value
        else:
            arm.revenue_squared[currency] += value
    return found


def experiment_fields(arms_of_campaign: dict[str, _Arm]) -> dict[str, Any]:
    currencies = {c for a in arms_of_campaign.values() for c, v in a.revenue.items() if v}
    one_currency = len(currencies) <= 1
    groups = {name: _group(arm) for name, arm in arms_of_campaign.items()}
    control = groups.get(HOLDOUT)
    treated = {name: g for name, g in sorted(groups.items()) if name not in (HOLDOUT, OTHER, GLOBAL_HOLDOUT)}
    fields: dict[str, Any] = {
        "variants": {name: _arm_fields(g, control, one_currency) for name, g in treated.items()},
        "holdout": _counts(control) if control else None,
        "global_holdout": _counts(groups[GLOBAL_HOLDOUT]) if GLOBAL_HOLDOUT in groups else None,
        "revenue_currency": next(iter(currencies)) if len(currencies) == 1 else None,
    }
    fields.update(_lift_fields(pooled(list(treated.values())), control, one_currency))
    return fields


def _group(arm: _Arm) -> Group:
    assigned = max(0, round(arm.assigned))
    return Group(
        assigned=assigned,
        # a range's conversions can belong to assignments made before it (or to a worker whose
        # assigned counter restarted): a rate above 1 would take the Wilson interval's root below 0
        converted=min(max(0, round(arm.converted)), assigned),
        revenue=sum(arm.revenue.values()),
        revenue_squared=sum(arm.revenue_squared.values()),
    )


def _counts(group: Group) -> dict[str, Any]:
    return {
        "assigned": group.assigned,
        "converted": group.converted,
        "conversion_rate": round(group.rate, 6),
        "revenue": round(group.revenue, 2),
        "revenue_per_recipient": round(group.revenue_per_recipient, 4),
    }


def _arm_fields(group: Group, control: Group | None, one_currency: bool) -> dict[str, Any]:
    return {**_counts(group), **_lift_fields(group, control, one_currency)}


def _lift_fields(treated: Group, control: Group | None, one_currency: bool) -> dict[str, Any]:
    if control is None or not treated.assigned:
        return {
            "lift": None,
            "lift_ci_low": None,
            "lift_ci_high": None,
            "relative_lift": None,
            "p_value": None,
            "lift_conclusion": "no_holdout" if control is None else "no_treated",
            "lift_why": "no held-out control group to compare with"
            if control is None
            else "no treated assignments yet",
            "revenue_lift": None,
            "revenue_lift_ci_low": None,
            "revenue_lift_ci_high": None,
        }
    result = lift(treated, control)
    revenue = result.revenue if one_currency else None
    return {
        "lift": round(result.lift, 6),
        "lift_ci_low": round(result.lift_ci_low, 6),
        "lift_ci_high": round(result.lift_ci_high, 6),
        "relative_lift": None if result.relative_lift is None else round(result.relative_lift, 4),
        "p_value": round(result.p_value, 6),
        "lift_conclusion": result.conclusion,
        "lift_why": result.why,
        "revenue_lift": None if revenue is None else round(revenue.estimate, 4),
        "revenue_lift_ci_low": None if revenue is None else round(revenue.low, 4),
        "revenue_lift_ci_high": None if revenue is None else round(revenue.high, 4),
    }
