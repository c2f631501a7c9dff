"""send_time: optimal through the real processor, with the clock and the events injected:
learning from human opens, holding a wait that is over until the person's hour, exits while
held, a restart keeping the chosen time, and the campaign file's bounds."""

from __future__ import annotations

from datetime import UTC, datetime, time, timedelta
from typing import Any

import msgspec
import pytest

from retarget.common.testing import FakeClock
from retarget.segmenter import consent
from retarget.segmenter.campaign_schema import CampaignFile
from retarget.segmenter.campaigns import Campaign, CampaignSet
from retarget.segmenter.live_changes import follow_current_versions
from retarget.segmenter.merging import merge_into
from retarget.segmenter.send_time import SendWindow
from retarget.segmenter.state import Profile, encode_due
from retarget.segmenter.testing import FakeTable, Harness, from_links, identify, track

WS = "ws"
KEY = b"ws:anon-1"
T0 = datetime(2026, 3, 2, 1, 0, tzinfo=UTC)  # a Monday, 01:00 UTC
WAIT = timedelta(hours=2)


def campaign(**extra: Any) -> Campaign:
    body = {
        "name": "reminder",
        "entry": {"event": "Product Added"},
        "wait": "2h",
        "exit": [{"event": "Order Completed"}],
        "conditions": {"cart_not_empty": True},
        **extra,
    }
    return Campaign.from_file(CampaignFile.model_validate(body))


OPTIMAL = CampaignSet.of([campaign(send_time="optimal", max_delay="24h")])


def harness(campaigns: CampaignSet = OPTIMAL, **windows: SendWindow) -> Harness:
    h = Harness(campaigns, clock=FakeClock(T0), send_windows=dict(windows))
    return h


def add(at: datetime, mid: str = "add-1") -> Any:
    return track("Product Added", at, mid=mid, product_id="p1", name="Boot", price=10.0)


def opened(at: datetime, mid: str, **extra: Any) -> Any:
    return from_links(track("Email Opened", at, mid=mid, campaign="reminder", message_id=f"m-{mid}", **extra))


def with_history(h: Harness, *hours: int) -> None:
    """A profile the campaign emailed before, with human opens at these UTC hours (days ago)."""
    profile = Profile(
        workspace_id=WS,
        profile_id="anon-1",
        email="a@example.com",
        last_fired={"reminder": T0 - timedelta(days=9)},
    )
    h.profiles[KEY] = msgspec.json.encode(profile)


async def start(h: Harness, *open_hours: int) -> None:
    with_history(h)
    for n, hour in enumerate(open_hours):
        day = T0 - timedelta(days=5 - n % 4)
        await h.send(opened(day.replace(hour=hour, minute=20), f"open-{n}"))
    await h.send(identify(T0, mid="id-1", email="a@example.com"))
    await h.send(add(T0))


# -- learning ---------------------------------------------------------------------------


async def test_human_opens_are_learned_in_the_workspaces_local_hour_once_each():
    h = harness(ws=SendWindow("America/New_York"))
    with_history(h)
    at = datetime(2026, 2, 20, 19, 20, tzinfo=UTC)  # 14:20 in New York
    await h.send(opened(at, "o1"))
    await h.send(opened(at, "o1"))  # the same message again (a retry): counted once
    await h.send(opened(at + timedelta(minutes=1), "o2", machine_open=True))  # a privacy proxy
    profile = h.profile(WS, "anon-1")
    assert profile is not None
    assert profile.engaged_hours[14] == 1 and sum(profile.engaged_hours) == 1


async def test_the_profiles_own_zone_wins_over_the_workspaces():
    h = harness(ws=SendWindow("America/New_York"))
    with_history(h)
    await h.send(identify(T0 - timedelta(days=3), mid="tz", timezone="Europe/Berlin"))
    await h.send(opened(datetime(2026, 2, 20, 19, 20, tzinfo=UTC), "o1"))  # 20:20 in Berlin
    profile = h.profile(WS, "anon-1")
    assert profile is not None and profile.engaged_hours[20] == 1


async def test_a_touch_for_a_campaign_that_never_emailed_them_teaches_nothing():
    h = harness()
    await h.send(opened(T0 - timedelta(hours=3), "o1"))
    profile = h.profile(WS, "anon-1")
    assert profile is None or profile.engaged_hours == []


def test_an_objection_forgets_the_hours_and_a_merge_keeps_them():
    profile = Profile(workspace_id=WS, profile_id="p", engaged_hours=[1] * 24)
    consent.stop_profiling(profile)
    assert profile.engaged_hours == []
    target = Profile(workspace_id=WS, profile_id="known")
    source = Profile(workspace_id=WS, profile_id="anon", engaged_hours=[0] * 10 + [3] + [0] * 13)
    merge_into(target, source, OPTIMAL, window=8)
    assert target.engaged_hours[10] == 3


# -- holding until the hour -------------------------------------------------------------


async def test_a_wait_that_is_over_is_held_until_the_learned_hour_then_fires():
    h = harness()
    await start(h, 14, 14)
    wait_end = T0 + WAIT
    h.clock.advance(hours=2)
    assert await h.run_timer() == []  # over, but 03:00 is not their hour
    held_until = datetime(2026, 3, 2, 14, tzinfo=UTC)
    assert h.due[KEY] == encode_due(held_until)  # the durable due table holds the chosen time
    profile = h.profile(WS, "anon-1")
    assert profile is not None and profile.pending["reminder"].send_time_chosen
    h.clock.advance(hours=10, minutes=59)
    assert await h.run_timer() == []
    h.clock.advance(minutes=1)
    fired = await h.run_timer()
    assert [t.due_at for t in fired] == [held_until]
    assert fired[0].due_at > wait_end


async def test_a_profile_without_history_gets_the_priors_hour():
    h = harness()
    await start(h)
    h.clock.advance(hours=2)
    assert await h.run_timer() == []
    h.clock.advance(hours=10)
    fired = await h.run_timer()
    assert [t.due_at for t in fired] == [datetime(2026, 3, 2, 9, tzinfo=UTC)]


async def test_an_immediate_campaign_fires_at_the_end_of_the_wait():
    h = harness(CampaignSet.of([campaign()]))
    await start(h, 14)
    h.clock.advance(hours=2)
    assert [t.due_at for t in await h.run_timer()] == [T0 + WAIT]


async def test_a_purchase_while_held_cancels_the_trigger():
    h = harness()
    await start(h, 14)
    h.clock.advance(hours=2)
    assert await h.run_timer() == []
    h.clock.advance(hours=3)
    await h.send(track("Order Completed", h.clock.now(), mid="order-1", order_id="o-1", total=10.0))
    h.clock.advance(hours=20)
    assert await h.run_timer() == []
    profile = h.profile(WS, "anon-1")
    assert profile is not None and profile.pending == {}
    assert KEY not in h.due


async def test_an_event_after_the_wait_holds_it_as_the_timer_would():
    h = harness()
    await start(h, 14)
    h.clock.advance(hours=5)  # the timer never ran: the next event decides first
    await h.send(track("Product Viewed", h.clock.now(), mid="view-1", product_id="p2"))
    assert h.triggers == []
    assert h.due[KEY] == encode_due(datetime(2026, 3, 2, 14, tzinfo=UTC))


async def test_quiet_hours_apply_when_an_event_decides_first_too():
    h = harness(ws=SendWindow("UTC", time(12), time(16)))
    await start(h, 14, 14, 14)
    h.clock.advance(hours=5)  # the timer never ran: the next event holds the wait
    await h.send(track("Product Viewed", h.clock.now(), mid="view-1", product_id="p2"))
    due = datetime.fromisoformat(h.due[KEY].decode())
    assert not time(12) <= due.time() < time(16)


async def test_quiet_hours_of_the_workspace_are_avoided():
    quiet = SendWindow("UTC", time(12), time(16))
    h = harness(ws=quiet)
    await start(h, 14, 14, 14)
    h.clock.advance(hours=2)
    await h.run_timer()
    due = datetime.fromisoformat(h.due[KEY].decode())
    assert not time(12) <= due.time() < time(16)
    assert T0 + WAIT < due <= T0 + WAIT + timedelta(hours=24)


async def test_a_restart_keeps_the_chosen_time():
    h = harness()
    await start(h, 14)
    h.clock.advance(hours=2)
    await h.run_timer()
    chosen = h.due[KEY]
    # a new worker: the same tables, a schedule rebuilt from the due table, a later clock
    again = Harness(OPTIMAL, clock=FakeClock(h.clock.now() + timedelta(hours=1)))
    again.profiles, again.due = FakeTable(h.profiles), FakeTable(h.due)
    again.__post_init__()
    again.schedule.rebuild(again.due.items(), lambda v: datetime.fromisoformat(v.decode()).timestamp())
    assert await again.run_timer() == []
    assert again.due[KEY] == chosen
    again.clock.advance(hours=11)
    assert [t.due_at for t in await again.run_timer()] == [datetime(2026, 3, 2, 14, tzinfo=UTC)]


async def test_a_replayed_hold_chooses_the_same_time():
    first, second = harness(), harness()
    for h in (first, second):
        await start(h, 17)
        h.clock.advance(hours=2)
        await h.run_timer()
    assert first.due[KEY] == second.due[KEY] == encode_due(datetime(2026, 3, 2, 17, tzinfo=UTC))


def test_a_chosen_send_time_is_not_re_timed_by_a_changed_wait():
    longer = CampaignSet.of([campaign(send_time="optimal", max_delay="24h", wait="6h")])
    profile = Profile(workspace_id=WS, profile_id="p")
    from retarget.segmenter.state import Pending

    chosen = T0 + timedelta(hours=13)
    profile.pending["reminder"] = Pending(
        campaign="reminder",
        due_at=chosen,
        entry_message_id="m",
        entry_at=T0,
        started_at=T0,
        send_time_chosen=True,
    )
    assert follow_current_versions(profile, longer) is None
    assert profile.pending["reminder"].due_at == chosen


# -- the campaign file ------------------------------------------------------------------


@pytest.mark.parametrize(
    ("extra", "reason"),
    [
        ({"send_time": "optimal"}, "needs max_delay"),
        ({"max_delay": "24h"}, "only to send_time: optimal"),
        ({"send_time": "optimal", "max_delay": "8d"}, "at most 7d"),
        ({"send_time": "soon", "max_delay": "1h"}, "send_time"),
    ],
)
def test_the_campaign_file_bounds_send_time(extra: dict[str, Any], reason: str):
    with pytest.raises(ValueError, match=reason):
        campaign(**extra)


def test_max_delay_reaches_the_runtime_campaign_only_when_optimal():
    assert campaign(send_time="optimal", max_delay="12h").max_delay == timedelta(hours=12)
    assert campaign().max_delay is None


async def test_a_held_wait_fires_at_its_chosen_time_and_is_not_held_again():
    # max_delay 2 h from 05:30 reaches 07:00 at best (the prior); from 07:00 another 2 h would
    # reach their 09:00: holding again would creep past the bound the campaign set
    short = CampaignSet.of([campaign(send_time="optimal", max_delay="2h")])
    h = harness(short)
    with_history(h)
    await h.send(opened(datetime(2026, 2, 27, 9, 20, tzinfo=UTC), "o1"))
    await h.send(identify(T0, mid="id-1", email="a@example.com"))
    await h.send(add(datetime(2026, 3, 2, 3, 30, tzinfo=UTC)))
    h.clock.advance(hours=4, minutes=30)  # 05:30: the wait is over
    assert await h.run_timer() == []
    h.clock.advance(hours=1, minutes=30)  # 07:00
    assert [t.due_at for t in await h.run_timer()] == [datetime(2026, 3, 2, 7, tzinfo=UTC)]


def test_a_campaign_file_without_max_delay_is_refused_naming_it(tmp_path):
    from retarget.segmenter.campaigns import CampaignError, load_campaigns

    body = "name: x\nentry: {event: A}\nwait: 1h\nsend_time: optimal\n"
    (tmp_path / "x.yaml").write_text(body)
    with pytest.raises(CampaignError, match=r"x\.yaml: .*send_time: optimal needs max_delay"):
        load_campaigns(tmp_path)
    (tmp_path / "x.yaml").write_text(body + "max_delay: 12h\n")
    assert load_campaigns(tmp_path).by_name["x"].max_delay == timedelta(hours=12)
