"""The segmenter's rules as pure functions, with the clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from retarget.common.identity import trigger_id
from retarget.common.schemas import TrackedEvent
from retarget.segmenter import rules
from retarget.segmenter.campaigns import builtin_campaigns
from retarget.segmenter.state import Profile

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
CAMPAIGNS = builtin_campaigns(cart_wait_s=4 * 3600)


def event(
    kind: str = "track", name: str | None = None, at: datetime = T0, mid: str = "m1", **fields
) -> TrackedEvent:
    return TrackedEvent(
        workspace_id="ws",
        type=kind,
        message_id=mid,
        timestamp=at,
        received_at=at,
        event=name,
        anonymous_id="anon-1",
        **fields,
    )


def add_to_cart(at: datetime = T0, mid: str = "m-add") -> TrackedEvent:
    props = {"product_id": "p1", "name": "Boots", "price": 80, "currency": "EUR", "quantity": 1}
    return event(name="Product Added", at=at, mid=mid, properties=props)


def profile() -> Profile:
    p = Profile(workspace_id="ws", profile_id="anon-1")
    rules.apply_event(
        p, event("identify", mid="m-id", traits={"email": "Ann@Example.com", "firstName": "Ann"}), CAMPAIGNS
    )
    return p


def test_cart_add_schedules_the_campaign_from_the_event_time():
    p = profile()
    rules.apply_event(p, add_to_cart(), CAMPAIGNS)
    assert rules.next_due(p) == T0 + timedelta(hours=4)
    assert rules.fire_due(p, CAMPAIGNS, T0 + timedelta(hours=3, minutes=59)) == []


def test_due_trigger_fires_once_with_a_deterministic_id_and_snapshot():
    p = profile()
    rules.apply_event(p, add_to_cart(), CAMPAIGNS)
    fired = rules.fire_due(p, CAMPAIGNS, T0 + timedelta(hours=4))
    assert len(fired) == 1
    trigger = fired[0]
    assert trigger.trigger_id == trigger_id("ws", "abandoned_cart", "anon-1", "m-add")
    assert trigger.recipient.email == "Ann@Example.com" and trigger.recipient.first_name == "Ann"
    assert [(line.name, line.price, line.currency) for line in trigger.cart] == [("Boots", 80.0, "EUR")]
    assert trigger.incentive == {"kind": "percent_off", "value": 10}
    assert rules.fire_due(p, CAMPAIGNS, T0 + timedelta(days=1)) == []  # removed once fired


def test_order_completed_cancels_and_empties_the_cart():
    p = profile()
    rules.apply_event(p, add_to_cart(), CAMPAIGNS)
    rules.apply_event(p, event(name="Order Completed", mid="m-order", at=T0 + timedelta(hours=1)), CAMPAIGNS)
    assert p.cart == {} and rules.next_due(p) is None
    assert rules.fire_due(p, CAMPAIGNS, T0 + timedelta(days=1)) == []


def test_new_cart_add_restarts_the_wait():
    p = profile()
    rules.apply_event(p, add_to_cart(), CAMPAIGNS)
    rules.apply_event(p, add_to_cart(T0 + timedelta(hours=2), mid="m-add-2"), CAMPAIGNS)
    assert rules.next_due(p) == T0 + timedelta(hours=6)
    assert p.cart["p1"].quantity == 2


def test_no_email_means_no_trigger():
    p = Profile(workspace_id="ws", profile_id="anon-1")
    rules.apply_event(p, add_to_cart(), CAMPAIGNS)
    assert rules.fire_due(p, CAMPAIGNS, T0 + timedelta(hours=5)) == []


def test_duplicates_inside_the_window_are_recognised():
    p = profile()
    assert not rules.is_duplicate(p, add_to_cart(), window=2)
    assert rules.is_duplicate(p, add_to_cart(), window=2)
    assert not rules.is_duplicate(p, add_to_cart(mid="x"), window=2)
    assert not rules.is_duplicate(p, add_to_cart(mid="y"), window=2)
    assert not rules.is_duplicate(p, add_to_cart(), window=2)  # fell out of the 2-id window


def test_malformed_cart_properties_are_unusable_not_a_crash():
    p = profile()
    with pytest.raises(rules.UnusableEvent, match="product_id"):
        rules.apply_event(p, event(name="Product Added", properties={"price": "cheap"}), CAMPAIGNS)
