"""Purchase attribution through the real processor, with the clock and the events injected."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest
from prometheus_client import REGISTRY

from retarget.common.schemas import TrackedEvent
from retarget.common.testing import FakeClock
from retarget.segmenter.attribution import UNKNOWN_CAMPAIGN, Windows
from retarget.segmenter.campaigns import CampaignSet, load_campaigns
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR, SegmenterSettings
from retarget.segmenter.state import Profile
from retarget.segmenter.testing import Harness, from_links, track

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
CAMPAIGNS = load_campaigns(DEFAULT_CAMPAIGNS_DIR)
FIVE_DAYS = timedelta(days=5)


def emailed(h: Harness, ws: str, profile_id: str = "anon-1") -> Harness:
    """A profile every sample campaign fired for a day before T0: touches must name one of those."""
    fired = {c.name: T0 - timedelta(days=1) for c in CAMPAIGNS}
    profile = Profile(workspace_id=ws, profile_id=profile_id, last_fired=fired)
    h.profiles[f"{ws}:{profile_id}".encode()] = msgspec.json.encode(profile)
    return h


@pytest.fixture
def h(workspace_id: str) -> Harness:
    return emailed(Harness(CAMPAIGNS, clock=FakeClock(T0)), workspace_id)


def opened(at: datetime, mid: str, campaign: str = "abandoned_cart", ws: str = "ws", **extra):
    return from_links(
        track("Email Opened", at, mid=mid, workspace_id=ws, campaign=campaign, message_id=f"m-{mid}", **extra)
    )


def clicked(at: datetime, mid: str, campaign: str = "abandoned_cart", ws: str = "ws", **extra):
    return from_links(
        track(
            "Email Link Clicked",
            at,
            mid=mid,
            workspace_id=ws,
            campaign=campaign,
            message_id=f"m-{mid}",
            url="https://shop.example/",
            **extra,
        )
    )


def order(at: datetime, mid: str, order_id: str = "o-1", ws: str = "ws", **props):
    props = {"revenue": 120.5, "currency": "eur", **props}
    return track("Order Completed", at, mid=mid, workspace_id=ws, order_id=order_id, **props)


async def happens(h: Harness, event: TrackedEvent) -> None:
    """The event handled when it happens: the clock moved to its time first (an event stamped
    more than a day after its receipt is dead-lettered, as ingest refuses it)."""
    if event.timestamp > h.clock.now():
        h.clock.advance(seconds=(event.timestamp - h.clock.now()).total_seconds())
    await h.send(event)


def counted(metric: str, ws: str, campaign: str, **labels: str) -> float:
    value = REGISTRY.get_sample_value(metric, {"workspace": ws, "campaign": campaign, **labels})
    return value or 0.0


async def test_a_purchase_just_inside_the_window_after_a_click_is_attributed_with_its_revenue(
    h: Harness, workspace_id: str
):
    await happens(h, clicked(T0, "c1", ws=workspace_id))
    await happens(h, order(T0 + FIVE_DAYS, "buy", ws=workspace_id))  # exactly 5 days: still inside

    assert counted("retarget_segmenter_conversions_total", workspace_id, "abandoned_cart") == 1
    revenue = counted("retarget_segmenter_revenue_total", workspace_id, "abandoned_cart", currency="EUR")
    assert revenue == 120.5
    (record,) = h.published
    assert (record.event, record.anonymous_id, record.workspace_id) == (
        "Order Attributed",
        "anon-1",
        workspace_id,
    )
    assert record.properties["order_id"] == "o-1" and record.properties["touch"] == "click"
    assert record.properties["message_id"] == "m-c1"


async def test_a_purchase_just_outside_the_window_is_not_attributed(h: Harness, workspace_id: str):
    await happens(h, opened(T0, "o1", ws=workspace_id))
    await happens(h, order(T0 + FIVE_DAYS + timedelta(seconds=1), "buy", ws=workspace_id))
    assert counted("retarget_segmenter_conversions_total", workspace_id, "abandoned_cart") == 0
    assert h.published == []


async def test_a_purchase_before_the_touch_is_not_attributed(h: Harness, workspace_id: str):
    await h.send(order(T0, "buy", ws=workspace_id))
    await h.send(clicked(T0 + timedelta(minutes=1), "c1", ws=workspace_id))
    assert counted("retarget_segmenter_conversions_total", workspace_id, "abandoned_cart") == 0


async def test_machine_opens_and_clicks_are_not_touches(h: Harness, workspace_id: str):
    await h.send(opened(T0, "o1", ws=workspace_id, machine_open=True))
    await h.send(clicked(T0, "c1", ws=workspace_id, machine_click=True))
    await h.send(order(T0 + timedelta(hours=1), "buy", ws=workspace_id))
    assert counted("retarget_segmenter_conversions_total", workspace_id, "abandoned_cart") == 0
    profile = h.profile(workspace_id, "anon-1")
    assert profile is not None and profile.touches == []


async def test_a_purchase_counts_once_even_when_sent_again_with_a_new_message_id(
    h: Harness, workspace_id: str
):
    await h.send(clicked(T0, "c1", ws=workspace_id))
    await h.send(order(T0 + timedelta(hours=1), "buy", ws=workspace_id))
    await h.send(order(T0 + timedelta(hours=1), "buy", ws=workspace_id))  # a replay (same messageId)
    await h.send(order(T0 + timedelta(hours=1), "buy-retry", ws=workspace_id))  # re-sent: same order_id
    assert counted("retarget_segmenter_conversions_total", workspace_id, "abandoned_cart") == 1
    assert (
        counted("retarget_segmenter_revenue_total", workspace_id, "abandoned_cart", currency="EUR") == 120.5
    )
    assert len(h.published) == 1

    await h.send(order(T0 + timedelta(hours=2), "buy-2", order_id="o-2", ws=workspace_id, revenue="30"))
    assert (
        counted("retarget_segmenter_conversions_total", workspace_id, "abandoned_cart") == 2
    )  # another order


async def test_the_last_touch_wins(h: Harness, workspace_id: str):
    await happens(h, clicked(T0, "c1", campaign="abandoned_cart", ws=workspace_id))
    await happens(h, opened(T0 + timedelta(days=1), "o2", campaign="browse_abandonment", ws=workspace_id))
    await happens(
        h,
        opened(
            T0 + timedelta(days=1, hours=1),
            "o3",
            campaign="post_purchase",
            ws=workspace_id,
            machine_open=True,
        ),
    )
    await happens(
        h, order(T0 + timedelta(days=2), "buy", ws=workspace_id, currency=None, revenue=None, total=99)
    )

    assert counted("retarget_segmenter_conversions_total", workspace_id, "browse_abandonment") == 1
    assert counted("retarget_segmenter_conversions_total", workspace_id, "abandoned_cart") == 0
    assert counted("retarget_segmenter_conversions_total", workspace_id, "post_purchase") == 0  # a machine
    revenue = counted(
        "retarget_segmenter_revenue_total", workspace_id, "browse_abandonment", currency="unknown"
    )
    assert revenue == 99


async def test_the_windows_are_configurable_per_touch_kind(workspace_id: str):
    h = Harness(
        CAMPAIGNS, clock=FakeClock(T0), windows=Windows(open=timedelta(days=1), click=timedelta(days=7))
    )
    emailed(h, workspace_id)
    await happens(h, opened(T0, "o1", campaign="post_purchase", ws=workspace_id))
    await happens(h, order(T0 + timedelta(days=2), "buy", ws=workspace_id))  # the open's 1 day is over
    assert counted("retarget_segmenter_conversions_total", workspace_id, "post_purchase") == 0
    await happens(h, clicked(T0, "c1", ws=workspace_id))
    await happens(h, order(T0 + timedelta(days=6), "buy-2", order_id="o-2", ws=workspace_id))
    assert counted("retarget_segmenter_conversions_total", workspace_id, "abandoned_cart") == 1

    settings = SegmenterSettings(attribution_open_window="36h", attribution_click_window="3d")
    assert settings.attribution_windows() == Windows(open=timedelta(hours=36), click=timedelta(days=3))
    with pytest.raises(ValueError, match="not a duration"):
        SegmenterSettings(attribution_click_window="soon")


async def test_touches_on_an_anonymous_profile_survive_the_merge_into_the_known_one(
    h: Harness, workspace_id: str
):
    await h.send(clicked(T0, "c1", ws=workspace_id))  # keyed by the email's (anonymous) profile
    await h.send(
        track("Signed In", T0 + timedelta(minutes=5), mid="in", workspace_id=workspace_id, user_id="u-1")
    )
    # a server-side order keyed by the userId only, after the merge
    await h.send(
        track(
            "Order Completed",
            T0 + timedelta(hours=1),
            mid="buy",
            workspace_id=workspace_id,
            anonymous_id=None,
            user_id="u-1",
            order_id="o-9",
            revenue=10,
            currency="USD",
        )
    )
    assert counted("retarget_segmenter_conversions_total", workspace_id, "abandoned_cart") == 1


def campaign_labels(ws: str) -> set[str]:
    """Every campaign label the conversion and revenue counters hold for the workspace."""
    return {
        sample.labels["campaign"]
        for metric in REGISTRY.collect()
        if metric.name in ("retarget_segmenter_conversions", "retarget_segmenter_revenue")
        for sample in metric.samples
        if sample.labels.get("workspace") == ws
    }


async def test_a_touch_for_a_campaign_that_never_emailed_the_profile_is_not_credited(workspace_id: str):
    h = Harness(CAMPAIGNS, clock=FakeClock(T0))  # nothing ever fired for this visitor
    await h.send(clicked(T0, "c1", ws=workspace_id))  # posted by a client, not by our email
    await h.send(clicked(T0, "c2", campaign="made_up_" + "x" * 40, ws=workspace_id))
    await h.send(order(T0 + timedelta(hours=1), "buy", ws=workspace_id))
    profile = h.profile(workspace_id, "anon-1")
    assert profile is not None and profile.touches == []
    assert h.published == [] and campaign_labels(workspace_id) == set()


async def test_client_campaign_names_never_become_metric_labels(h: Harness, workspace_id: str):
    """A campaign that emailed the profile but is no longer loaded is counted as `_unknown`."""
    h.processor.campaigns = CampaignSet.of(c for c in CAMPAIGNS if c.name != "browse_abandonment")
    await h.send(clicked(T0, "c1", campaign="browse_abandonment", ws=workspace_id))
    await h.send(order(T0 + timedelta(hours=1), "buy", ws=workspace_id))
    assert campaign_labels(workspace_id) == {UNKNOWN_CAMPAIGN}
    assert counted("retarget_segmenter_conversions_total", workspace_id, UNKNOWN_CAMPAIGN) == 1
    (record,) = h.published  # the record names the campaign the touch really was for
    assert record.properties["campaign"] == "browse_abandonment"
