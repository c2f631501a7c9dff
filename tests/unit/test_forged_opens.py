"""A public write key (embedded in every page) posting "Email Opened" for someone else's
profile: ingest publishes it like any track call, and the segmenter learns a send hour from
it (send_time.note_engagement) — so anyone who knows a profile id and a campaign that fired
for it can move that person's reminders to an hour of their choosing (within max_delay), and
add last-touch attribution touches. Tracking links are the only legitimate source of these
events; nothing marks them apart today (their context names a library any client can name).

Fixed: only ingest's links set TrackedEvent.origin ("link"), and the segmenter counts touches
(attribution, send hours, the propensity model's engagement) only from those."""

from __future__ import annotations

from datetime import UTC, datetime

import msgspec

from retarget.common.schemas import TrackedEvent
from retarget.common.testing import FakeClock
from retarget.segmenter.campaigns import CampaignSet, load_campaigns
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR
from retarget.segmenter.testing import Harness, identify, track
from tests.unit.ingest.test_api import AUTH, ingest  # noqa: F401  (the ingest fixture)

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)


async def test_a_write_keys_forged_open_teaches_no_send_hour(ingest) -> None:  # noqa: F811
    cart = load_campaigns(DEFAULT_CAMPAIGNS_DIR).by_name["abandoned_cart"]
    h = Harness(CampaignSet.of([cart]), clock=FakeClock(T0))
    victim = "victim-anon-1"
    await h.send(identify(T0, mid="id", anonymous_id=victim, workspace_id="ws1", email="v@example.com"))
    await h.send(
        track(
            "Product Added", T0, mid="add", anonymous_id=victim, workspace_id="ws1", product_id="p", price=9
        )
    )
    h.clock.advance(seconds=cart.wait.total_seconds())
    await h.run_timer()  # the campaign fired for the victim: a touch for it now counts
    answer = await ingest.client.post(
        "/v1/track",
        json={
            "anonymousId": victim, "event": "Email Opened", "messageId": "forged-1",
            "properties": {"campaign": "abandoned_cart", "message_id": "whatever"},
            "context": {"library": {"name": "retarget-links"}},
            "origin": "link",  # a client can't set what only ingest's links set
        },
        headers=AUTH,
    )  # fmt: skip
    if answer.status_code >= 400:
        return  # refused at the door: fixed
    published = [msgspec.json.decode(v, type=TrackedEvent) for _, _, v in ingest.publisher.sent]
    assert published and all(e.origin is None for e in published)
    for event in published:
        await h.send(event)
    profile = h.profile("ws1", victim)
    assert profile is not None and sum(profile.engaged_hours) == 0, profile.engaged_hours
    assert not profile.touches  # no attribution credit either
