"""The due schedule (heap over the durable `due` table) and firing by wall clock."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

from retarget.common.testing import FakeClock
from retarget.segmenter.campaigns import load_campaigns
from retarget.segmenter.processor import due_epoch
from retarget.segmenter.schedule import DueSchedule
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR
from retarget.segmenter.testing import Harness, identify, track

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
CAMPAIGNS = load_campaigns(DEFAULT_CAMPAIGNS_DIR, waits={"abandoned_cart": "2s"})


async def quiet_cart(h: Harness, visitor: str, at: datetime) -> None:
    await h.send(identify(at, mid=f"{visitor}-id", anonymous_id=visitor, email=f"{visitor}@example.com"))
    await h.send(
        track("Product Added", at, mid=f"{visitor}-add", anonymous_id=visitor, product_id="p", price=1)
    )


async def test_a_quiet_visitor_fires_by_the_wall_clock_not_by_a_next_event():
    h = Harness(CAMPAIGNS, clock=FakeClock(T0))
    await quiet_cart(h, "a", T0)
    h.clock.advance(seconds=1.9)
    assert await h.run_timer() == []
    h.clock.advance(seconds=0.2)
    (t,) = await h.run_timer()
    assert t.due_at == T0 + timedelta(seconds=2) and t.fired_at == T0 + timedelta(seconds=2.1)
    assert h.acked == ["triggers"]  # acknowledged before the table write that records it
    assert b"ws:a" not in h.due and h.profile("ws", "a").pending == {}  # type: ignore[union-attr]
    h.clock.advance(seconds=10)
    assert await h.run_timer() == []  # once


async def test_an_exit_before_the_due_time_cancels():
    h = Harness(CAMPAIGNS, clock=FakeClock(T0))
    await quiet_cart(h, "a", T0)
    await h.send(track("Order Completed", T0 + timedelta(seconds=1), mid="o", anonymous_id="a", order_id="1"))
    h.clock.advance(seconds=3)
    assert [t.campaign for t in await h.run_timer()] == []


def test_the_schedule_pops_only_current_entries_and_rearms_them():
    due = {b"k1": b"v1", b"k2": b"v2-new"}
    s = DueSchedule(resend_after_s=5)
    s.push(b"k1", 10, b"v1")
    s.push(b"k2", 11, b"v2-old")  # stale: the table moved on
    s.push(b"k2", 30, b"v2-new")
    assert s.take_due(9, due.get) == []
    assert s.take_due(12, due.get) == [b"k1"]
    assert s.take_due(16, due.get) == []
    assert s.take_due(17, due.get) == [b"k1"]  # no tick acted on it: sent again
    del due[b"k1"]
    assert s.take_due(100, due.get) == [b"k2"]


def test_rebuild_reads_the_table_and_ignores_what_was_there():
    s = DueSchedule()
    s.push(b"gone", 1, b"x")
    when = T0.isoformat().encode()
    s.rebuild([(b"a", when), (b"b", (T0 + timedelta(hours=1)).isoformat().encode())], due_epoch)
    assert len(s) == 2 and not s.dirty
    assert s.take_due(T0.timestamp(), {b"a": when}.get) == [b"a"]


async def test_many_profiles_only_touch_the_due_ones():
    h = Harness(CAMPAIGNS, clock=FakeClock(T0))
    for i in range(50):
        await quiet_cart(h, f"v{i}", T0 + timedelta(seconds=i))
    h.clock.advance(seconds=10)
    fired = await h.run_timer()
    assert len(fired) == 9  # due at 2..10 s: v0..v8
    assert len({t.trigger_id for t in fired}) == 9


def test_take_due_fires_nothing_past_until_and_rearms_after_now() -> None:
    from retarget.segmenter.schedule import DueSchedule

    schedule = DueSchedule(resend_after_s=30.0)
    schedule.push(b"early", 100.0, b"v1")
    schedule.push(b"late", 200.0, b"v2")
    current = {b"early": b"v1", b"late": b"v2"}
    assert schedule.take_due(300.0, current.get, until=150.0) == [b"early"]
    assert schedule.take_due(300.0, current.get, until=150.0) == []  # re-armed after now, not until
    assert schedule.take_due(300.0, current.get) == [b"late"]
