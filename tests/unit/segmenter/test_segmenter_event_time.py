"""Decisions by event time at the due boundary: a wait due at or before an event's own
timestamp fires before that event changes the profile, whether the timer or the event got
there first (the real processor over the shared fakes, with the clock passed in)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from retarget.common.identity import trigger_id
from retarget.common.schemas import encode
from retarget.common.testing import FakeClock
from retarget.segmenter.campaigns import load_campaigns
from retarget.segmenter.firing import due_before_event, fire_due
from retarget.segmenter.processor import Poison
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR
from retarget.segmenter.state import Pending, Profile
from retarget.segmenter.testing import Harness, identify, track

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
CAMPAIGNS = load_campaigns(DEFAULT_CAMPAIGNS_DIR)
WAIT = timedelta(hours=4)  # abandoned_cart
DUE = T0 + WAIT
MS = timedelta(milliseconds=1)


def add(at: datetime, mid: str, product: str = "p1", **props: object):
    return track("Product Added", at, mid=mid, product_id=product, name="Boots", price=80, **props)


def order(at: datetime, mid: str = "m-order"):
    return track("Order Completed", at, mid=mid, order_id="o-1", revenue=80)


@pytest.fixture
async def h() -> Harness:
    """A known visitor with a cart add at T0: abandoned_cart is due at T0 + 4h."""
    harness = Harness(CAMPAIGNS, clock=FakeClock(T0))
    await harness.send(identify(T0 - timedelta(minutes=1), mid="m-id", email="ann@example.com"))
    await harness.send(add(T0, "m-add"))
    return harness


CART_TRIGGER = trigger_id("ws", "abandoned_cart", "anon-1", "m-add")


def at_due_boundary(profile: Profile, stamped: datetime, now: datetime) -> datetime | None:
    return due_before_event(profile, order(stamped), lambda: now)


def test_the_cutoff_is_the_events_time_only_when_a_wait_is_due_by_then():
    p = Profile(workspace_id="ws", profile_id="v")
    p.pending["abandoned_cart"] = Pending(
        campaign="abandoned_cart", due_at=DUE, entry_message_id="m", entry_at=T0, started_at=T0
    )
    later = DUE + timedelta(hours=1)
    assert at_due_boundary(p, DUE - MS, later) is None  # just before: the event comes first
    assert at_due_boundary(p, DUE, later) == DUE  # at: the wait is over, it fires first
    assert at_due_boundary(p, DUE + MS, later) == DUE + MS
    # a future-stamped event (a skewed client clock) never fires a wait before its wall-clock time
    assert at_due_boundary(p, DUE + timedelta(hours=2), DUE - MS) is None
    assert at_due_boundary(Profile(workspace_id="ws", profile_id="w"), later, later) is None


def test_an_event_fires_only_the_waits_due_by_its_own_time_not_by_the_wall_clock():
    p = Profile(workspace_id="ws", profile_id="v", email="ann@example.com")
    for name, due in (("browse_abandonment", DUE - MS), ("trial_not_converted", DUE + MS)):
        p.pending[name] = Pending(
            campaign=name, due_at=due, entry_message_id=name, entry_at=T0, started_at=T0
        )
    now = DUE + timedelta(hours=1)  # both are due by the wall clock
    fired = fire_due(p, CAMPAIGNS, now, until=DUE)
    assert [t.campaign for t in fired.triggers] == ["browse_abandonment"]
    assert list(p.pending) == ["trial_not_converted"]  # after the event: the event may still change it


async def test_an_order_stamped_just_after_due_lets_the_reminder_fire_first(h: Harness):
    h.clock.advance(hours=4, milliseconds=20)  # the timer's next pass has not come yet
    await h.send(order(DUE + 5 * MS))
    assert [t.trigger_id for t in h.triggers] == [CART_TRIGGER]
    (trigger,) = h.triggers
    assert [line.product_id for line in trigger.cart] == ["p1"]  # the cart as it was at due time
    assert await h.run_timer() == []  # fired once, not again


async def test_an_order_stamped_at_the_due_time_lets_the_reminder_fire_first(h: Harness):
    h.clock.advance(hours=4, milliseconds=20)
    await h.send(order(DUE))
    assert [t.trigger_id for t in h.triggers] == [CART_TRIGGER]


async def test_an_order_stamped_just_before_due_cancels_even_when_handled_after_it(h: Harness):
    h.clock.advance(hours=5)  # behind a backlog: handled an hour after the due time
    await h.send(order(DUE - MS))
    assert h.triggers == []
    assert await h.run_timer() == []
    profile = h.profile("ws", "anon-1")
    assert profile is not None and "abandoned_cart" not in profile.pending


async def test_a_cart_add_stamped_after_due_fires_the_old_wait_before_it_restarts(h: Harness):
    h.clock.advance(hours=4, milliseconds=50)
    await h.send(add(DUE + 10 * MS, "m-add-2", product="p2"))
    (trigger,) = h.triggers
    assert trigger.trigger_id == CART_TRIGGER  # the first entry's wait, not pushed out
    assert [line.product_id for line in trigger.cart] == ["p1"]  # p2 came after the due moment
    profile = h.profile("ws", "anon-1")
    assert profile is not None and "p2" in profile.cart
    assert "abandoned_cart" not in profile.pending  # the 16 h cooldown, as after a timer firing


async def test_a_cart_add_stamped_before_due_but_handled_after_it_still_restarts_the_wait(h: Harness):
    h.clock.advance(hours=4, minutes=1)
    await h.send(add(DUE - MS, "m-add-2", product="p2"))
    assert h.triggers == []
    profile = h.profile("ws", "anon-1")
    assert profile is not None
    assert profile.pending["abandoned_cart"].due_at == DUE - MS + WAIT


async def test_a_future_stamped_event_does_not_fire_a_wait_early(h: Harness):
    h.clock.advance(hours=1)  # the wall clock is 3 h before the due time
    await h.send(order(DUE + timedelta(hours=1)))  # a client clock 4 h fast
    assert h.triggers == []


async def test_an_unusable_event_after_due_still_records_the_fired_wait(h: Harness):
    h.clock.advance(hours=4, seconds=1)
    await h.send(track("Product Added", DUE + MS, mid="m-bad", price="not a number"))
    assert [t.trigger_id for t in h.triggers] == [CART_TRIGGER]
    assert await h.run_timer() == []  # the fired wait was stored as gone: no second trigger


async def test_an_event_that_changes_nothing_else_still_records_the_fired_wait(h: Harness):
    h.clock.advance(hours=4, seconds=1)
    await h.send(track("Page Scrolled", DUE + MS, mid="m-scroll"))
    assert [t.trigger_id for t in h.triggers] == [CART_TRIGGER]
    assert await h.run_timer() == []


# -- an event's time is bounded by its receipt, as ingest bounds it --------------------------


async def test_an_order_stamped_a_day_after_its_receipt_is_still_decided_by(h: Harness):
    await h.send(order(T0 + timedelta(days=1)))  # ingest's bound: a day after receipt, the edge counts
    profile = h.profile("ws", "anon-1")
    assert profile is not None and "abandoned_cart" not in profile.pending


async def test_an_order_stamped_past_a_day_after_its_receipt_is_refused_before_it_changes_anything(
    h: Harness,
):
    with pytest.raises(Poison, match="after the event was received"):
        await h.send(order(T0 + timedelta(days=1) + MS))
    profile = h.profile("ws", "anon-1")
    assert profile is not None and "abandoned_cart" in profile.pending  # the cart stands


async def test_a_received_at_claimed_in_the_future_does_not_stretch_the_bound(h: Harness):
    forged = order(T0 + timedelta(days=300))  # produced to Kafka directly: receivedAt claimed as well
    assert forged.received_at == forged.timestamp
    with pytest.raises(Poison, match="after the event was received"):
        await h.send(forged)


async def test_an_event_time_without_a_time_zone_is_refused(h: Harness):
    raw = encode(order(T0)).replace(
        b'"timestamp":"2026-03-01T10:00:00Z"', b'"timestamp":"2026-03-01T10:00:00"'
    )
    assert b'"2026-03-01T10:00:00"' in raw
    with pytest.raises(Poison, match="time zone"):
        await h.processor.on_event(b"ws:anon-1", raw)


async def test_an_event_stamped_before_2000_is_refused_as_ingest_refuses_it(h: Harness):
    """Ingest's lower bound too (2000-01-01): a cart add stamped in year 1, produced directly,
    was applied, and its wait's firing overflowed (`newest - within` before year 1) on every
    timer pass — raised from the tick, the worker exited, and its restart fired it again."""
    year_one = datetime(1, 1, 1, tzinfo=UTC)
    stale = msgspec.structs.replace(add(year_one, "m-old", product="p2"), received_at=year_one)
    with pytest.raises(Poison, match="2000-01-01"):
        await h.send(stale)
    profile = h.profile("ws", "anon-1")
    assert profile is not None and list(profile.cart) == ["p1"]
    h.clock.advance(hours=5)
    assert [t.trigger_id for t in await h.run_timer()] == [CART_TRIGGER]  # the timer goes on


async def test_an_event_keyed_to_another_workspace_changes_nothing_there(h: Harness):
    """The key places the record (its partition, the profile read and written); the body names
    its workspace. A record produced directly — or re-routed by its key — keyed `ws:anon-1` but
    carrying another workspace's id wrote into ws's profile: a cart ws's visitor never filled,
    and ws's abandoned-cart email to that visitor."""
    foreign = msgspec.structs.replace(add(T0, "m-foreign", product="p9"), workspace_id="other")
    with pytest.raises(Poison, match="workspace"):
        await h.processor.on_event(b"ws:anon-1", encode(foreign))
    profile = h.profile("ws", "anon-1")
    assert profile is not None and list(profile.cart) == ["p1"]
