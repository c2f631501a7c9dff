"""Consent at fire time (workspace opt-in / opt-out), objections and unsubscribes, the mode cache."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from retarget.common.testing import FakeClock
from retarget.common.workspaces import ConsentMode
from retarget.segmenter.campaigns import load_campaigns
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR
from retarget.segmenter.testing import Harness, identify, track
from retarget.segmenter.workspace_modes import ConsentModes

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
CAMPAIGNS = load_campaigns(DEFAULT_CAMPAIGNS_DIR, waits={"abandoned_cart": "30m", "browse_abandonment": "1h"})


def harness(**modes: ConsentMode) -> Harness:
    return Harness(CAMPAIGNS, clock=FakeClock(T0), consent_modes=dict(modes))


def cart_add(at: datetime, mid: str, product: str = "p1"):
    return track("Product Added", at, mid=mid, product_id=product, name="Boots", price=80, currency="EUR")


def unsubscribed(at: datetime, mid: str, scope: str, campaign: str = "abandoned_cart"):
    return track("Unsubscribed", at, mid=mid, message_id="m-1", campaign=campaign, scope=scope)


async def fire_after(h: Harness, **delta: float):
    h.clock.advance(**delta)
    return await h.run_timer()


async def test_an_opt_in_workspace_fires_only_for_recorded_consent():
    h = harness(ws="opt_in")
    await h.send(identify(T0, mid="id", email="ann@example.com"))
    await h.send(cart_add(T0, "add"))
    assert await fire_after(h, minutes=31) == []  # consent unknown: not in an opt-in workspace

    await h.send(identify(T0 + timedelta(hours=1), mid="id-2", marketing_consent="granted"))
    await h.send(cart_add(T0 + timedelta(hours=1), "add-2", product="p2"))
    (trigger,) = await fire_after(h, minutes=60)
    assert trigger.recipient.consent is True  # travels on to the composer and the sender


async def test_an_opt_out_workspace_fires_for_unknown_consent_and_says_so():
    h = harness(ws="opt_out")
    await h.send(identify(T0, mid="id", email="ann@example.com"))
    await h.send(cart_add(T0, "add"))
    (trigger,) = await fire_after(h, minutes=31)
    assert trigger.recipient.consent is None


async def test_an_unknown_workspace_counts_as_opt_out():
    h = harness(other="opt_in")
    await h.send(identify(T0, mid="id", email="ann@example.com"))
    await h.send(cart_add(T0, "add"))
    assert len(await fire_after(h, minutes=31)) == 1


async def test_consent_from_segment_consent_management_categories():
    h = harness(ws="opt_in")
    consented = identify(T0, mid="id", email="ann@example.com")
    consented.context = {"consent": {"categoryPreferences": {"Advertising": False, "Marketing": True}}}
    await h.send(consented)
    await h.send(cart_add(T0, "add"))
    (trigger,) = await fire_after(h, minutes=31)
    assert trigger.recipient.consent is True


async def test_unsubscribing_from_everything_cancels_the_pending_and_schedules_nothing_new():
    h = harness()
    await h.send(identify(T0, mid="id", email="ann@example.com"))
    await h.send(cart_add(T0, "add"))
    await h.send(track("Product Viewed", T0 + timedelta(seconds=1), mid="view", product_id="p9"))
    assert set(h.profile("ws", "anon-1").pending) == {"abandoned_cart", "browse_abandonment"}  # type: ignore[union-attr]

    await h.send(unsubscribed(T0 + timedelta(minutes=1), "unsub", "all"))
    profile = h.profile("ws", "anon-1")
    assert profile is not None and profile.consent is False
    assert profile.pending == {} and profile.cart == {} and profile.viewed == []  # no more profiling
    assert b"ws:anon-1" not in h.due

    await h.send(cart_add(T0 + timedelta(minutes=2), "add-again", product="p2"))
    await h.send(track("Product Viewed", T0 + timedelta(minutes=2), mid="view-2", product_id="p3"))
    profile = h.profile("ws", "anon-1")
    assert profile is not None and profile.pending == {} and profile.cart == {} and profile.viewed == []
    assert await fire_after(h, hours=3) == []

    # a later explicit consent starts it again
    await h.send(identify(T0 + timedelta(hours=4), mid="id-2", email_consent=True))
    await h.send(cart_add(T0 + timedelta(hours=4), "add-3", product="p4"))
    assert [t.campaign for t in await fire_after(h, hours=2)] == ["abandoned_cart"]


async def test_unsubscribing_from_one_campaign_blocks_only_that_campaign():
    h = harness()
    await h.send(identify(T0, mid="id", email="ann@example.com"))
    await h.send(cart_add(T0, "add"))
    await h.send(track("Product Viewed", T0 + timedelta(seconds=1), mid="view", product_id="p9"))
    await h.send(unsubscribed(T0 + timedelta(minutes=1), "unsub", "campaign", campaign="abandoned_cart"))

    profile = h.profile("ws", "anon-1")
    assert profile is not None and profile.consent is None and profile.blocked_campaigns == ["abandoned_cart"]
    assert set(profile.pending) == {"browse_abandonment"}
    await h.send(cart_add(T0 + timedelta(minutes=2), "add-again", product="p2"))  # exits browsing too
    await h.send(track("Product Viewed", T0 + timedelta(minutes=3), mid="view-2", product_id="p8"))
    assert set(h.profile("ws", "anon-1").pending) == {"browse_abandonment"}  # type: ignore[union-attr]
    assert [t.campaign for t in await fire_after(h, hours=2)] == ["browse_abandonment"]


async def test_an_objection_in_traits_stops_profiling_like_an_unsubscribe():
    h = harness()
    await h.send(identify(T0, mid="id", email="ann@example.com"))
    await h.send(cart_add(T0, "add"))
    await h.send(identify(T0 + timedelta(minutes=1), mid="id-2", consent="denied"))
    profile = h.profile("ws", "anon-1")
    assert profile is not None and profile.pending == {} and profile.cart == {}
    assert await fire_after(h, hours=1) == []


async def test_the_mode_cache_keeps_the_last_known_modes_while_postgresql_is_away():
    answers: list[dict[str, ConsentMode] | Exception] = [
        {"shop": "opt_in"},
        OSError("connection refused"),
        {"shop": "opt_out", "new": "opt_in"},
    ]

    async def fetch() -> dict[str, ConsentMode]:
        answer = answers.pop(0)
        if isinstance(answer, Exception):
            raise answer
        return answer

    modes = ConsentModes(fetch)
    assert not modes.attempted and modes("shop") == "opt_out"  # nothing known yet: the default
    assert await modes.refresh() is True
    assert modes.attempted and modes("shop") == "opt_in" and modes("unknown") == "opt_out"
    assert await modes.refresh() is False
    assert modes("shop") == "opt_in"  # kept through the outage
    assert await modes.refresh() is True
    assert (modes("shop"), modes("new")) == ("opt_out", "opt_in")


async def test_a_first_load_that_fails_still_lets_the_timer_start():
    async def down() -> dict[str, ConsentMode]:
        raise TimeoutError

    modes = ConsentModes(down)
    assert await modes.refresh() is False
    assert modes.attempted and modes("shop") == "opt_out"


@pytest.mark.parametrize(
    ("traits", "expected"),
    [
        ({"marketing_consent": True}, True),
        ({"emailConsent": "opt_out"}, False),
        ({"consent": "yes"}, True),
        ({"unsubscribed": True, "consent": True}, False),
        ({"consent": "maybe"}, None),
        ({}, None),
    ],
)
def test_consent_trait_names(traits, expected):
    from retarget.segmenter.consent import consent_from_traits

    assert consent_from_traits(traits) is expected
