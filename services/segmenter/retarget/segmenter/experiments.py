"""Experiments: which arm a profile is in, and what it bought after. Pure. docs/experiments.md.

The arm is a stable hash of (workspace, campaign, profile): the same person lands in the same
arm on every firing, on every worker, and in a replay. A profile that was assigned before keeps
its recorded arm, so a person whose anonymous profile merged into a known one stays where the
first firing put them. The hash's first `holdout` share is the control group (no email); the
rest is split among the variants by weight. Before any of that, the workspace's global control
group (its policy's `global_holdout`, one draw per profile for all campaigns) gets no email
from any campaign.

Intent to treat: every firing, sent or held out, is an assignment, and an order within the
window after it counts for its arm whether or not an email was sent, opened or clicked; a
profile's order counts once per assignment (order ids), and the first order converts it.
Last-touch attribution (attribution.py) goes on beside this, unchanged.
"""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from datetime import datetime, timedelta

from retarget.common.schemas import TrackedEvent
from retarget.config.experiment_schema import DEFAULT_ARM, GLOBAL_HOLDOUT_ARM, HOLDOUT_ARM, Variant
from retarget.segmenter.attribution import _currency, _order_id, _revenue
from retarget.segmenter.campaigns import Campaign
from retarget.segmenter.state import Assignment, Profile

MAX_ORDERS_PER_ASSIGNMENT = 20
#: an order's revenue at or above this counts 0 (as the propensity activity counts it): the
#: squared-revenue counter squares it, and a float square overflows from about 1.4e154
MAX_ORDER_REVENUE = 1e12
OTHER_ARM = "_other"  # a label for an arm the campaign no longer has (arm names can't start with _)
_SCALE = float(2**64)


def unit_draw(workspace_id: str, campaign: str, profile_id: str) -> float:
    """A number in [0, 1) fixed by (workspace, campaign, profile): sha256, the first 8 bytes."""
    digest = hashlib.sha256(f"{workspace_id}\x1f{campaign}\x1f{profile_id}".encode()).digest()
    return int.from_bytes(digest[:8], "big") / _SCALE


def arm_of(draw: float, campaign: Campaign) -> str:
    """The arm a draw falls in: [0, holdout) is the control group, the rest split by weight."""
    if draw < campaign.holdout:
        return HOLDOUT_ARM
    if not campaign.variants:
        return DEFAULT_ARM
    # weights relative to the largest: their sum can't overflow (1e308 twice sent everyone to the
    # last arm) nor lose precision in subnormals (5e-324 twice split 25/75)
    top = max(v.weight for v in campaign.variants)
    point = (
        (draw - campaign.holdout) / (1 - campaign.holdout) * sum(v.weight / top for v in campaign.variants)
    )
    for variant in campaign.variants:
        point -= variant.weight / top
        if point < 0:
            return variant.name
    return campaign.variants[-1].name  # float rounding at the very top


def in_global_holdout(workspace_id: str, profile_id: str, share: float) -> bool:
    """The workspace's control group: one draw per profile, the same for every campaign."""
    return share > 0 and unit_draw(workspace_id, "\x1fglobal", profile_id) < share


def assign(profile: Profile, campaign: Campaign, at: datetime, global_holdout: float = 0.0) -> str:
    """Record a new assignment (this firing) and return its arm: the workspace's control group
    first (drawn afresh, so changing the share applies at once), else the recorded arm if any."""
    previous = profile.assignments.get(campaign.name)
    if in_global_holdout(profile.workspace_id, profile.profile_id, global_holdout):
        arm = GLOBAL_HOLDOUT_ARM
    elif previous is not None and previous.arm in arms(campaign):
        arm = previous.arm
    else:
        arm = arm_of(unit_draw(profile.workspace_id, campaign.name, profile.profile_id), campaign)
    profile.assignments = {**profile.assignments, campaign.name: Assignment(arm=arm, at=at)}
    return arm


def arms(campaign: Campaign) -> set[str]:
    """Every arm the campaign has now: its metric labels."""
    treated = {v.name for v in campaign.variants} or {DEFAULT_ARM}
    return treated | ({HOLDOUT_ARM} if campaign.holdout else set())


def variant(campaign: Campaign, arm: str) -> Variant | None:
    return next((v for v in campaign.variants if v.name == arm), None)


def arm_label(campaign: Campaign | None, arm: str) -> str:
    """The arm as a Prometheus label: only the campaign's current arms, so labels stay bounded."""
    known = campaign is not None and (arm in arms(campaign) or arm == GLOBAL_HOLDOUT_ARM)
    return arm if known else OTHER_ARM


@dataclass(frozen=True)
class ArmOrder:
    """An order counted for an assignment's arm."""

    campaign: str
    arm: str
    converted: bool  # the assignment's first order: one conversion per assignment
    revenue: float
    revenue_squared: float  # how much this order adds to Σ (assignment revenue)²
    currency: str


def record_order(profile: Profile, event: TrackedEvent, window: timedelta) -> list[ArmOrder]:
    """Count an `Order Completed` for every assignment whose window holds it, once per order."""
    if event.event != "Order Completed":
        return []
    order_id = _order_id(event.properties) or event.message_id
    revenue = _revenue(event.properties)
    if revenue >= MAX_ORDER_REVENUE:
        revenue = 0.0  # hostile or a unit mistake; squared below, it raised OverflowError
    counted = []
    for campaign, assignment in profile.assignments.items():
        if not assignment.at <= event.timestamp <= assignment.at + window:
            continue
        if order_id in assignment.orders:
            continue
        before = assignment.revenue
        assignment.revenue = before + revenue
        assignment.orders = [*assignment.orders, order_id][-MAX_ORDERS_PER_ASSIGNMENT:]
        counted.append(
            ArmOrder(
                campaign=campaign,
                arm=assignment.arm,
                converted=len(assignment.orders) == 1,
                revenue=revenue,
                # (before + r)² - before²: the counter of squares stays Σ over assignments of
                # (its revenue)², and only grows (a Prometheus counter)
                revenue_squared=(before + revenue) ** 2 - before**2,
                currency=_currency(event.properties),
            )
        )
    return counted


def merge_assignments(target: Profile, source: Profile) -> None:
    """Per campaign the later assignment: the one whose window is open now."""
    merged = dict(target.assignments)
    for campaign, incoming in source.assignments.items():
        mine = merged.get(campaign)
        if mine is None or incoming.at > mine.at:
            merged[campaign] = incoming
    target.assignments = merged
