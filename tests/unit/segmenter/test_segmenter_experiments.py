"""Variants and holdout through the real processor: stable arms, a control group that gets no
trigger, and intent-to-treat orders counted per arm once per assignment."""

from __future__ import annotations

from collections import Counter
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import msgspec
from prometheus_client import REGISTRY

from retarget.common.schemas import TrackedEvent
from retarget.common.testing import FakeClock
from retarget.config.experiment_schema import Variant
from retarget.segmenter import experiments
from retarget.segmenter.campaigns import CampaignSet, load_campaigns
from retarget.segmenter.merging import merge_into
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR
from retarget.segmenter.state import Assignment, Profile
from retarget.segmenter.testing import Harness, identify, track

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
BUNDLED = load_campaigns(DEFAULT_CAMPAIGNS_DIR)
CART = replace(
    BUNDLED.by_name["abandoned_cart"],
    variants=(
        Variant(name="a", weight=1, subject="A {{ recipient.first_name }}"),
        Variant(name="b", weight=3, template="browse_abandonment", incentive={"kind": "free_shipping"}),
    ),
    holdout=0.1,
)
CAMPAIGNS = CampaignSet.of([CART])


def draws(n: int, ws: str = "ws") -> Counter[str]:
    return Counter(experiments.arm_of(experiments.unit_draw(ws, CART.name, f"p{i}"), CART) for i in range(n))


def test_the_same_profile_always_draws_the_same_arm():
    first = [experiments.unit_draw("ws", "abandoned_cart", f"p{i}") for i in range(50)]
    assert first == [experiments.unit_draw("ws", "abandoned_cart", f"p{i}") for i in range(50)]
    # another campaign or workspace draws independently
    assert first != [experiments.unit_draw("ws", "other", f"p{i}") for i in range(50)]


def test_arms_follow_holdout_then_weights_within_tolerance():
    counts = draws(20_000)
    # holdout 10%; the other 90% split 1:3 -> a 22.5%, b 67.5% (±1.5 points: > 5 standard errors)
    assert abs(counts["holdout"] / 20_000 - 0.10) < 0.015
    assert abs(counts["a"] / 20_000 - 0.225) < 0.015
    assert abs(counts["b"] / 20_000 - 0.675) < 0.015


def test_a_campaign_without_variants_or_holdout_has_one_arm():
    plain = BUNDLED.by_name["abandoned_cart"]
    assert {experiments.arm_of(d / 100, plain) for d in range(100)} == {"default"}


async def cart_profile(h: Harness, profile_id: str) -> None:
    at = T0
    await h.send(
        identify(at, mid=f"id-{profile_id}", anonymous_id=profile_id, email=f"{profile_id}@example.com")
    )
    await h.send(
        track(
            "Product Added", at, mid=f"add-{profile_id}", anonymous_id=profile_id, product_id="p1", price=80
        )
    )


def sample(name: str, **labels: str) -> float:
    return REGISTRY.get_sample_value(name, labels) or 0.0


def harness() -> Harness:
    return Harness(CAMPAIGNS, clock=FakeClock(T0))


def arm_of_profile(h: Harness, profile_id: str, ws: str = "ws") -> str:
    profile = h.profile(ws, profile_id)
    assert profile is not None
    return profile.assignments["abandoned_cart"].arm


async def fire_for(n: int) -> Harness:
    """n profiles that added to the cart at T0, the timer run when the wait is over."""
    h = harness()
    for i in range(n):
        await cart_profile(h, f"p{i}")
    h.clock.advance(seconds=CART.wait.total_seconds())
    await h.run_timer()
    return h


async def test_held_out_profiles_get_no_trigger_and_are_counted(workspace_id: str):
    h = await fire_for(60)
    held_out = {f"p{i}" for i in range(60) if arm_of_profile(h, f"p{i}") == "holdout"}
    assert held_out, "60 profiles at 10% should hold some out"
    assert {t.profile_id for t in h.triggers}.isdisjoint(held_out)
    assert len(h.triggers) == 60 - len(held_out)
    assert {t.arm for t in h.triggers} <= {"a", "b"}
    # a held-out firing is a firing for the cooldown: a new cart add within 16 h does not fire again
    for p in held_out:
        profile = h.profile("ws", p)
        assert profile is not None and profile.last_fired["abandoned_cart"] == T0 + CART.wait


async def test_the_trigger_carries_its_variant():
    h = await fire_for(40)
    by_arm = {t.arm: t for t in h.triggers}
    assert by_arm["a"].subject == "A {{ recipient.first_name }}"
    assert by_arm["a"].template == "abandoned_cart"
    assert by_arm["a"].incentive == CART.incentive  # no override: the campaign's (with its coupon)
    assert by_arm["b"].template == "browse_abandonment" and by_arm["b"].subject is None
    assert by_arm["b"].incentive == {"kind": "free_shipping"}


async def test_a_returning_profile_keeps_its_recorded_arm():
    h = harness()
    await cart_profile(h, "p1")
    key = b"ws:p1"
    profile = h.profile("ws", "p1")
    assert profile is not None
    # whatever the hash says, an earlier assignment's arm wins (e.g. carried over by a merge)
    drawn = experiments.arm_of(experiments.unit_draw("ws", CART.name, "p1"), CART)
    other = "a" if drawn != "a" else "b"
    profile.assignments = {"abandoned_cart": Assignment(arm=other, at=T0 - timedelta(days=3))}
    h.profiles[key] = msgspec.json.encode(profile)
    h.clock.advance(seconds=CART.wait.total_seconds())
    await h.run_timer()
    assert [t.arm for t in h.triggers] == [other]


async def test_orders_count_for_the_arm_once_per_assignment_opened_or_not(workspace_id: str):
    h = harness()
    ws = workspace_id
    pid = "buyer"
    await h.send(identify(T0, mid="id", anonymous_id=pid, workspace_id=ws, email="b@example.com"))
    await h.send(
        track("Product Added", T0, mid="add", anonymous_id=pid, workspace_id=ws, product_id="p", price=5)
    )
    h.clock.advance(seconds=CART.wait.total_seconds())
    await h.run_timer()
    arm = arm_of_profile(h, pid, ws)
    labels = {"workspace": ws, "campaign": "abandoned_cart", "arm": arm}
    assert sample("retarget_segmenter_experiment_assigned_total", **labels) == 1

    def order(mid: str, order_id: str, revenue: float, days: float) -> TrackedEvent:
        at = T0 + CART.wait + timedelta(days=days)
        return track(
            "Order Completed",
            at,
            mid=mid,
            anonymous_id=pid,
            workspace_id=ws,
            order_id=order_id,
            revenue=revenue,
            currency="EUR",
        )

    h.clock.advance(days=10)
    await h.send(order("o1", "order-1", 30.0, 1))
    await h.send(order("o1-again", "order-1", 30.0, 1.1))  # same order re-sent
    await h.send(order("o2", "order-2", 10.0, 2))
    await h.send(order("o3", "order-3", 99.0, 6))  # after the 5-day window
    money = {**labels, "currency": "EUR"}
    assert sample("retarget_segmenter_experiment_conversions_total", **labels) == 1
    assert sample("retarget_segmenter_experiment_revenue_total", **money) == 40.0
    # Σ (assignment revenue)²: (30 + 10)² = 1600, reached by 30² then (40² - 30²)
    assert sample("retarget_segmenter_experiment_revenue_squared_total", **money) == 1600.0


def test_a_merge_keeps_the_later_assignment():
    early = Assignment(arm="a", at=T0)
    late = Assignment(arm="b", at=T0 + timedelta(days=1))
    target = Profile(workspace_id="ws", profile_id="u", assignments={"abandoned_cart": early})
    source = Profile(workspace_id="ws", profile_id="anon", assignments={"abandoned_cart": late, "x": early})
    merge_into(target, source, CAMPAIGNS, window=64)
    assert target.assignments == {"abandoned_cart": late, "x": early}


def test_an_arm_the_campaign_no_longer_has_is_labelled_other():
    assert experiments.arm_label(CART, "a") == "a"
    assert experiments.arm_label(CART, "gone") == "_other"
    assert experiments.arm_label(CART, "global_holdout") == "global_holdout"  # any campaign may have it
    assert experiments.arm_label(None, "a") == "_other"


async def test_a_workspace_global_holdout_gets_no_mail_from_any_campaign():
    from retarget.segmenter.campaign_registry import CampaignRegistry
    from retarget.segmenter.testing import campaign_record

    registry = CampaignRegistry([CART])
    registry.on_change(campaign_record("ws", "", {"global_holdout": "30%"}, kind="policy"))
    assert registry("ws").global_holdout == 0.3 and registry("other").global_holdout == 0.0
    h = Harness(registry, clock=FakeClock(T0))
    for i in range(40):
        await cart_profile(h, f"p{i}")
    h.clock.advance(seconds=CART.wait.total_seconds())
    await h.run_timer()
    globally = {f"p{i}" for i in range(40) if experiments.in_global_holdout("ws", f"p{i}", 0.3)}
    assert globally, "40 profiles at 30% should hold some out"
    assert {p for p in globally if arm_of_profile(h, p) == "global_holdout"} == globally
    assert {t.profile_id for t in h.triggers}.isdisjoint(globally)
    assert sample(
        "retarget_segmenter_experiment_assigned_total",
        workspace="ws",
        campaign="abandoned_cart",
        arm="global_holdout",
    ) >= len(globally)
    # a deleted policy ends it
    deleted = campaign_record("ws", "", {}, kind="policy")
    registry.on_change(deleted)
    assert registry("ws").global_holdout == 0.0


async def test_a_huge_order_revenue_is_not_an_overflow_and_the_order_still_counts(workspace_id: str):
    # (before + r)² overflows a float from r ≈ 1.4e154: the OverflowError dead-lettered the whole
    # Order Completed, so the purchase was lost for every campaign's exit and for attribution
    h = harness()
    ws, pid = workspace_id, "whale"
    await h.send(identify(T0, mid="id", anonymous_id=pid, workspace_id=ws, email="w@example.com"))
    await h.send(
        track("Product Added", T0, mid="add", anonymous_id=pid, workspace_id=ws, product_id="p", price=5)
    )
    h.clock.advance(seconds=CART.wait.total_seconds())
    await h.run_timer()
    arm = arm_of_profile(h, pid, ws)
    at = T0 + CART.wait + timedelta(hours=1)
    for i, revenue in enumerate((1e200, 1e308, 25.0)):
        await h.send(
            track(
                "Order Completed",
                at,
                mid=f"o{i}",
                anonymous_id=pid,
                workspace_id=ws,
                order_id=f"o{i}",
                revenue=revenue,
                currency="EUR",
            )
        )
    labels = {"workspace": ws, "campaign": "abandoned_cart", "arm": arm}
    money = {**labels, "currency": "EUR"}
    assert sample("retarget_segmenter_experiment_conversions_total", **labels) == 1
    assert (
        sample("retarget_segmenter_experiment_revenue_total", **money) == 25.0
    )  # implausible amounts count 0
    assert sample("retarget_segmenter_experiment_revenue_squared_total", **money) == 625.0
    profile = h.profile(ws, pid)
    assert profile is not None and profile.assignments["abandoned_cart"].orders == ["o0", "o1", "o2"]


def test_extreme_weights_still_split_by_their_ratio():
    # the schema takes any finite weight above 0: 1e308 twice overflowed the sum (everyone in the
    # last arm), 5e-324 twice lost precision (25/75)
    for weight in (1e308, 5e-324, 1e-300):
        campaign = replace(
            CART, variants=(Variant(name="a", weight=weight), Variant(name="b", weight=weight)), holdout=0.0
        )
        counts = Counter(
            experiments.arm_of(experiments.unit_draw("ws", CART.name, f"p{i}"), campaign) for i in range(4000)
        )
        assert abs(counts["a"] / 4000 - 0.5) < 0.04, (weight, counts)
