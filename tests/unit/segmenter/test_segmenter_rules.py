"""The segmenter's rules as pure functions over the shipped sample campaigns, with the clock passed in."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from retarget.common.identity import trigger_id
from retarget.segmenter import rules
from retarget.segmenter.campaigns import load_campaigns
from retarget.segmenter.firing import fire_due, next_due
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR
from retarget.segmenter.state import Profile
from retarget.segmenter.testing import identify, track

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
CAMPAIGNS = load_campaigns(DEFAULT_CAMPAIGNS_DIR)


def add_to_cart(at: datetime = T0, mid: str = "m-add", product: str = "p1", price: float = 80):
    return track(
        "Product Added",
        at,
        mid=mid,
        product_id=product,
        name="Boots",
        price=price,
        currency="EUR",
        url="https://shop.example/p1",
        image_url="https://shop.example/p1.jpg",
    )


def known_profile() -> Profile:
    p = Profile(workspace_id="ws", profile_id="anon-1")
    rules.apply_event(
        p, identify(T0, mid="m-id", email="Ann@Example.com", firstName="Ann", locale="de-DE"), CAMPAIGNS
    )
    return p


def fired_names(p: Profile, at: datetime) -> list[str]:
    return [t.campaign for t in fire_due(p, CAMPAIGNS, at).triggers]


def test_cart_add_schedules_from_the_event_time_not_the_processing_time():
    p = known_profile()
    rules.apply_event(p, add_to_cart(), CAMPAIGNS)
    assert next_due(p) == T0 + timedelta(hours=4)
    assert fire_due(p, CAMPAIGNS, T0 + timedelta(hours=3, minutes=59)).triggers == []


def test_due_trigger_fires_once_with_a_deterministic_id_and_the_cart_snapshot():
    p = known_profile()
    rules.apply_event(p, add_to_cart(), CAMPAIGNS)
    fired = fire_due(p, CAMPAIGNS, T0 + timedelta(hours=4)).triggers
    assert len(fired) == 1
    t = fired[0]
    assert t.trigger_id == trigger_id("ws", "abandoned_cart", "anon-1", "m-add")
    assert (t.template, t.recipient.email, t.recipient.first_name, t.recipient.locale) == (
        "abandoned_cart",
        "Ann@Example.com",
        "Ann",
        "de-DE",
    )
    line = t.cart[0]
    assert (line.name, line.price, line.currency, line.url, line.image_url) == (
        "Boots",
        80.0,
        "EUR",
        "https://shop.example/p1",
        "https://shop.example/p1.jpg",
    )
    assert t.incentive == {
        "kind": "percent_off",
        "value": 10,
        "coupon": {"mode": "unique", "expires_after": 7 * 86400},
    }
    assert "Product Added" in t.reason and "Order Completed" in t.reason
    assert fire_due(p, CAMPAIGNS, T0 + timedelta(days=1)).triggers == []  # removed once fired


def test_order_completed_cancels_and_empties_the_cart():
    p = known_profile()
    rules.apply_event(p, add_to_cart(), CAMPAIGNS)
    applied = rules.apply_event(p, track("Order Completed", T0 + timedelta(hours=1), mid="m-o"), CAMPAIGNS)
    assert rules.Outcome("cancelled", "abandoned_cart", "exit: Order Completed") in applied.outcomes
    assert p.cart == {} and "abandoned_cart" not in p.pending
    assert "abandoned_cart" not in fired_names(p, T0 + timedelta(days=1))


def test_a_late_exit_from_before_the_entry_does_not_cancel_it():
    p = known_profile()
    rules.apply_event(p, add_to_cart(T0 + timedelta(hours=1)), CAMPAIGNS)
    rules.apply_event(p, track("Order Completed", T0, mid="m-old-order"), CAMPAIGNS)
    assert "abandoned_cart" in p.pending


def test_an_exit_stamped_the_same_instant_as_the_entry_cancels_it():
    """Ties go to the exit (README): a cart add and its order stamped together are one purchase."""
    p = known_profile()
    rules.apply_event(p, add_to_cart(T0), CAMPAIGNS)
    rules.apply_event(p, track("Order Completed", T0, mid="m-order"), CAMPAIGNS)
    assert "abandoned_cart" not in p.pending


def test_an_entry_stamped_the_same_instant_as_the_exit_is_ignored_in_either_order():
    p = known_profile()
    rules.apply_event(p, track("Order Completed", T0, mid="m-order"), CAMPAIGNS)
    rules.apply_event(p, add_to_cart(T0), CAMPAIGNS)
    assert "abandoned_cart" not in p.pending


def test_new_cart_add_restarts_the_wait_and_adds_up_quantities():
    p = known_profile()
    rules.apply_event(p, add_to_cart(), CAMPAIGNS)
    rules.apply_event(p, add_to_cart(T0 + timedelta(hours=2), mid="m-add-2"), CAMPAIGNS)
    assert next_due(p) == T0 + timedelta(hours=6)
    assert p.cart["p1"].line.quantity == 2
    assert p.pending["abandoned_cart"].entry_message_id == "m-add-2"


def test_conditions_are_rechecked_at_fire_time():
    no_email = Profile(workspace_id="ws", profile_id="anon-1")
    rules.apply_event(no_email, add_to_cart(), CAMPAIGNS)
    result = fire_due(no_email, CAMPAIGNS, T0 + timedelta(hours=5))
    assert (
        result.triggers == [] and rules.Outcome("cancelled", "abandoned_cart", "no email") in result.outcomes
    )

    emptied = known_profile()
    rules.apply_event(emptied, add_to_cart(), CAMPAIGNS)
    rules.apply_event(
        emptied, track("Product Removed", T0 + timedelta(hours=1), mid="m-rm", product_id="p1"), CAMPAIGNS
    )
    assert fire_due(emptied, CAMPAIGNS, T0 + timedelta(hours=5)).triggers == []

    refused = known_profile()
    rules.apply_event(refused, add_to_cart(), CAMPAIGNS)
    rules.apply_event(refused, identify(T0, mid="m-c", email_consent="denied"), CAMPAIGNS)
    assert refused.consent is False
    assert fire_due(refused, CAMPAIGNS, T0 + timedelta(hours=5)).triggers == []


def test_cooldown_blocks_reentry_after_a_trigger():
    p = known_profile()
    rules.apply_event(p, add_to_cart(), CAMPAIGNS)
    assert fired_names(p, T0 + timedelta(hours=4)) == ["abandoned_cart"]
    applied = rules.apply_event(p, add_to_cart(T0 + timedelta(hours=5), mid="m-again"), CAMPAIGNS)
    assert rules.Outcome("cancelled", "abandoned_cart", "cooldown") in applied.outcomes
    rules.apply_event(p, add_to_cart(T0 + timedelta(hours=21), mid="m-later"), CAMPAIGNS)
    assert "abandoned_cart" in p.pending  # 16 h after the last one fired


def test_browse_abandonment_lists_the_viewed_products_not_in_the_cart():
    p = known_profile()
    for i, product in enumerate(["p1", "p2", "p1"]):
        rules.apply_event(
            p,
            track(
                "Product Viewed",
                T0 + timedelta(minutes=i),
                mid=f"v{i}",
                product_id=product,
                name=f"Name {product}",
                price=10 + i,
                currency="EUR",
                url=f"u/{product}",
                image_url=f"i/{product}",
            ),
            CAMPAIGNS,
        )
    (t,) = fire_due(p, CAMPAIGNS, T0 + timedelta(hours=3)).triggers
    assert t.campaign == "browse_abandonment"
    assert [x["product_id"] for x in t.data["products"]] == ["p1", "p2"]  # newest first, once each
    assert set(t.data["products"][0]) == {"product_id", "name", "price", "currency", "url", "image_url"}


def test_a_cart_add_cancels_browse_abandonment():
    p = known_profile()
    rules.apply_event(p, track("Product Viewed", T0, mid="v", product_id="p1"), CAMPAIGNS)
    rules.apply_event(p, add_to_cart(T0 + timedelta(minutes=1)), CAMPAIGNS)
    assert "browse_abandonment" not in p.pending


def test_trial_not_converted_carries_the_plan_and_does_not_restart():
    p = known_profile()
    rules.apply_event(p, track("Trial Started", T0, mid="t1", trial_plan_name="Pro"), CAMPAIGNS)
    rules.apply_event(
        p, track("Trial Started", T0 + timedelta(days=1), mid="t2", trial_plan_name="Max"), CAMPAIGNS
    )
    assert fire_due(p, CAMPAIGNS, T0 + timedelta(days=7, minutes=-1)).triggers == []
    (t,) = fire_due(p, CAMPAIGNS, T0 + timedelta(days=7)).triggers
    assert t.data["trial"] == {"plan": "Pro", "started_at": T0.isoformat()}


def test_post_purchase_snapshots_the_order_at_entry():
    p = known_profile()
    order = track(
        "Order Completed",
        T0,
        mid="o1",
        order_id="A-1",
        total=120.5,
        currency="EUR",
        products=[{"product_id": "p1", "name": "Boots", "price": 120.5, "quantity": 1}],
    )
    rules.apply_event(p, order, CAMPAIGNS)
    (t,) = fire_due(p, CAMPAIGNS, T0 + timedelta(hours=2)).triggers
    assert t.campaign == "post_purchase" and t.incentive["value"] == 15
    assert t.data["order"]["order_id"] == "A-1" and t.data["order"]["revenue"] == 120.5
    assert t.data["order"]["products"][0]["name"] == "Boots"


def test_post_purchase_needs_an_order_id():
    p = known_profile()
    rules.apply_event(p, track("Order Completed", T0, mid="o1", total=5), CAMPAIGNS)
    assert "post_purchase" not in p.pending


def test_two_abandoned_carts_within_30_days_send_the_survey():
    p = known_profile()
    rules.apply_event(p, add_to_cart(), CAMPAIGNS)
    assert fired_names(p, T0 + timedelta(hours=4)) == ["abandoned_cart"]
    assert "repeat_abandoner_survey" not in p.pending  # once is not a habit
    second = T0 + timedelta(days=3)
    rules.apply_event(p, add_to_cart(second, mid="m-add-2"), CAMPAIGNS)
    assert fired_names(p, second + timedelta(hours=4)) == ["abandoned_cart"]
    (t,) = fire_due(p, CAMPAIGNS, second + timedelta(hours=5)).triggers
    assert t.campaign == "repeat_abandoner_survey"
    assert t.data["survey_url"].startswith("https://")


def test_duplicates_are_recognised_inside_the_window_only():
    p = known_profile()
    rules.remember(p, "a", window=2)
    rules.remember(p, "b", window=2)
    assert rules.is_duplicate(p, "a") and rules.is_duplicate(p, "b")
    rules.remember(p, "c", window=2)
    assert not rules.is_duplicate(p, "a")  # fell out of the 2-id window


def test_malformed_cart_properties_are_unusable_not_a_crash():
    p = known_profile()
    with pytest.raises(rules.UnusableEvent, match="product_id"):
        rules.apply_event(p, track("Product Added", T0, mid="x", price="cheap"), CAMPAIGNS)
    with pytest.raises(rules.UnusableEvent, match="traits"):
        rules.apply_event(
            p, identify(T0, mid="y").__class__(**{**_fields(identify(T0, mid="y")), "traits": []}), CAMPAIGNS
        )


def _fields(event) -> dict:
    return {f: getattr(event, f) for f in event.__struct_fields__}


def test_unrelated_events_change_nothing_but_the_activity_counts():
    p = known_profile()
    before = msgspec.structs.replace(p, activity=None)
    assert rules.apply_event(p, track("Some Custom Thing", T0, mid="z"), CAMPAIGNS).changed
    assert msgspec.structs.replace(p, activity=None) == before
    assert p.activity is not None and p.activity.days[-1].events == 1
