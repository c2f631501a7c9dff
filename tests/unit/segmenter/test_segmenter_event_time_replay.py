"""The same events give the same triggers whether the worker handled them as they came or
long after, all at once (a backlog, a restart): a seeded traffic script with events stamped
a few milliseconds either side of due times, replayed through the real processor."""

from __future__ import annotations

import random
from datetime import UTC, datetime, timedelta

from retarget.common.schemas import TrackedEvent
from retarget.common.testing import FakeClock
from retarget.segmenter.campaigns import load_campaigns
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR
from retarget.segmenter.testing import Harness, identify, track

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
CAMPAIGNS = load_campaigns(DEFAULT_CAMPAIGNS_DIR)
CART_WAIT = CAMPAIGNS.by_name["abandoned_cart"].wait
BROWSE_WAIT = CAMPAIGNS.by_name["browse_abandonment"].wait
NEAR = [timedelta(milliseconds=ms) for ms in (-30, -5, -1, 0, 1, 5, 30)]

Fired = set[tuple[str, str]]


def visitor_events(rng: random.Random, n: int) -> list[TrackedEvent]:
    """One visitor: viewed, maybe added to the cart, then something right at a due boundary."""
    anon = f"v{n}"
    start = T0 + timedelta(seconds=rng.randrange(3600))
    out = [
        identify(start, mid=f"{anon}-id", anonymous_id=anon, email=f"{anon}@example.com"),
        track(
            "Product Viewed",
            start + timedelta(seconds=1),
            mid=f"{anon}-view",
            anonymous_id=anon,
            product_id="p1",
        ),
    ]
    browse_due = start + timedelta(seconds=1) + BROWSE_WAIT
    if rng.random() < 0.7:
        added = start + timedelta(seconds=rng.randrange(2, 600))
        out.append(
            track("Product Added", added, mid=f"{anon}-add", anonymous_id=anon, product_id="p1", price=50)
        )
        boundary = added + CART_WAIT + rng.choice(NEAR)
    else:
        boundary = browse_due + rng.choice(NEAR)
    kind = rng.choice(["order", "add", "view", "nothing"])
    if kind == "order":
        out.append(track("Order Completed", boundary, mid=f"{anon}-buy", anonymous_id=anon, order_id=anon))
    elif kind == "add":
        out.append(
            track("Product Added", boundary, mid=f"{anon}-add2", anonymous_id=anon, product_id="p2", price=9)
        )
    elif kind == "view":
        out.append(track("Product Viewed", boundary, mid=f"{anon}-view2", anonymous_id=anon, product_id="p3"))
    return out


def traffic(seed: int = 13, visitors: int = 300) -> list[TrackedEvent]:
    rng = random.Random(seed)
    events = [e for n in range(visitors) for e in visitor_events(rng, n)]
    return sorted(events, key=lambda e: e.timestamp)


def fired(h: Harness) -> Fired:
    return {(t.trigger_id, t.campaign) for t in h.triggers}


async def on_time(events: list[TrackedEvent]) -> Fired:
    """The reference: each event handled at its own time, the timer firing at each due moment."""
    h = Harness(CAMPAIGNS, clock=FakeClock(T0 - timedelta(minutes=1)))
    for event in events:
        while (at := h.schedule.next_at()) is not None and at <= event.timestamp.timestamp():
            h.clock.advance(seconds=max(0.0, at - h.clock.timestamp()))
            await h.run_timer()
        h.clock.advance(seconds=max(0.0, (event.timestamp - h.clock.now()).total_seconds()))
        await h.send(event)
    return fired(await drained(h))


async def idle(events: list[TrackedEvent], timer_every_s: float = 1.0) -> Fired:
    """An idle worker: events handled as they come, the timer passing every second between them
    (a quarter second off the due times, which fall on whole seconds here)."""
    h = Harness(CAMPAIGNS, clock=FakeClock(T0 - timedelta(minutes=1)))
    next_pass = h.clock.timestamp() + 0.25
    for event in events:
        while next_pass <= event.timestamp.timestamp():
            h.clock.advance(seconds=next_pass - h.clock.timestamp())
            await h.run_timer()
            next_pass += timer_every_s
        h.clock.advance(seconds=max(0.0, (event.timestamp - h.clock.now()).total_seconds()))
        await h.send(event)
    return fired(await drained(h))


async def backlog(events: list[TrackedEvent]) -> Fired:
    """A worker that was down: every event handled a day late, all at once, then the timer."""
    h = Harness(CAMPAIGNS, clock=FakeClock(events[-1].timestamp + timedelta(days=1)))
    for event in events:
        await h.send(event)
    return fired(await drained(h))


async def drained(h: Harness) -> Harness:
    h.clock.advance(days=2)
    await h.run_timer()
    return h


async def test_a_backlog_and_an_idle_worker_fire_the_same_triggers_as_firing_on_time():
    events = traffic()
    expected = await on_time(events)
    assert len(expected) > 100  # the script really crosses due times (both campaigns)
    assert {campaign for _, campaign in expected} >= {"abandoned_cart", "browse_abandonment"}
    assert await idle(events) == expected
    assert await backlog(events) == expected
