"""Identity merge through the processor, with profile-events delivered back in memory."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import msgspec
import pytest

from retarget.common.schemas import TrackedEvent, encode
from retarget.common.testing import FakeClock
from retarget.segmenter.campaigns import load_campaigns
from retarget.segmenter.identity import ProfileMerged
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR
from retarget.segmenter.testing import Harness, identify, track

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
CAMPAIGNS = load_campaigns(DEFAULT_CAMPAIGNS_DIR, waits={"abandoned_cart": "30m"})


@pytest.fixture
def h() -> Harness:
    return Harness(CAMPAIGNS, clock=FakeClock(T0))


def cart_add(at: datetime, mid: str, **ids) -> TrackedEvent:
    return track("Product Added", at, mid=mid, product_id="p1", name="Boots", price=80, currency="EUR", **ids)


async def test_anonymous_cart_then_identify_with_a_user_id_merges_and_fires_for_the_known_profile(h: Harness):
    await h.send(cart_add(T0, "m-add", anonymous_id="anon-1"))
    await h.send(
        identify(
            T0 + timedelta(minutes=1),
            mid="m-id",
            anonymous_id="anon-1",
            user_id="u-1",
            email="ann@example.com",
        )
    )

    anon, known = h.profile("ws", "anon-1"), h.profile("ws", "u-1")
    assert anon is not None and anon.merged_into == "u-1" and not anon.pending and not anon.cart
    assert known is not None and known.email == "ann@example.com" and "p1" in known.cart
    assert h.acked == ["profile_events"]  # the merge record was acknowledged before the redirect

    h.clock.advance(minutes=31)
    (trigger,) = await h.run_timer()
    assert (trigger.profile_id, trigger.campaign, trigger.recipient.email) == (
        "u-1",
        "abandoned_cart",
        "ann@example.com",
    )


async def test_later_anonymous_events_follow_the_redirect(h: Harness):
    await h.send(identify(T0, mid="m-id", anonymous_id="anon-1", user_id="u-1", email="ann@example.com"))
    await h.send(cart_add(T0 + timedelta(minutes=1), "m-add", anonymous_id="anon-1"))  # no userId
    profile = h.profile("ws", "u-1")
    assert profile is not None and "p1" in profile.cart


async def test_a_server_side_order_keyed_by_user_id_cancels_the_merged_cart_whatever_the_order(h: Harness):
    """The order (keyed u-1) is handled before the merge record from anon-1 arrives."""
    await h.send(cart_add(T0, "m-add", anonymous_id="anon-1"))
    await h.send(
        track(
            "Order Completed",
            T0 + timedelta(minutes=5),
            mid="m-order",
            anonymous_id=None,
            user_id="u-1",
            order_id="o1",
        )
    )
    await h.send(
        identify(
            T0 + timedelta(minutes=1), mid="m-id", anonymous_id="anon-1", user_id="u-1", email="a@b.example"
        )
    )
    known = h.profile("ws", "u-1")
    assert known is not None and "abandoned_cart" not in known.pending and not known.cart
    h.clock.advance(hours=5)
    assert [t.campaign for t in await h.run_timer()] == ["post_purchase"]


async def test_alias_merges_a_profile_that_lives_under_another_key(h: Harness):
    await h.send(identify(T0, mid="m-id", anonymous_id=None, user_id="old-id", email="ann@example.com"))
    await h.send(cart_add(T0, "m-add", anonymous_id=None, user_id="old-id"))
    alias = TrackedEvent(
        workspace_id="ws",
        type="alias",
        message_id="m-alias",
        timestamp=T0,
        received_at=T0,
        user_id="new-id",
        previous_id="old-id",
    )
    await h.send(alias)
    assert h.profile("ws", "old-id").merged_into == "new-id"  # type: ignore[union-attr]
    assert "p1" in h.profile("ws", "new-id").cart  # type: ignore[union-attr]
    h.clock.advance(hours=1)
    assert [t.profile_id for t in await h.run_timer()] == ["new-id"]


async def test_a_replayed_merge_record_changes_nothing(h: Harness):
    await h.send(cart_add(T0, "m-add", anonymous_id="anon-1"))
    await h.send(
        identify(T0, mid="m-id", anonymous_id="anon-1", user_id="u-1", email="a@b.example"), deliver=False
    )
    merge = next(v for k, v in h.internal if b'"merged"' in v)
    await h.deliver()
    before = h.profiles[b"ws:u-1"]
    await h.processor.on_internal(b"ws:u-1", merge)
    assert h.profiles[b"ws:u-1"] == before


async def test_duplicate_message_ids_are_ignored(h: Harness):
    await h.send(identify(T0, mid="m-id", email="a@b.example"))
    await h.send(cart_add(T0, "m-add"))
    await h.send(cart_add(T0, "m-add"))
    assert h.profile("ws", "anon-1").cart["p1"].line.quantity == 1  # type: ignore[union-attr]


async def test_a_redirect_cycle_is_poison_not_an_endless_loop(h: Harness):
    from retarget.segmenter.processor import Poison
    from retarget.segmenter.state import Profile

    h.profiles[b"ws:a"] = msgspec.json.encode(Profile(workspace_id="ws", profile_id="a", merged_into="b"))
    h.profiles[b"ws:b"] = msgspec.json.encode(Profile(workspace_id="ws", profile_id="b", merged_into="a"))
    record = ProfileMerged(source="x", profile=Profile(workspace_id="ws", profile_id="x"))
    with pytest.raises(Poison, match="hops"):
        await h.processor.on_internal(b"ws:a", encode(record))
        await h.deliver()


async def test_undecodable_records_are_poison_and_unusable_ones_are_skipped(h: Harness):
    from retarget.segmenter.processor import Poison

    with pytest.raises(Poison, match="not a TrackedEvent"):
        await h.processor.on_event(b"ws:anon-1", b"{not json")
    with pytest.raises(Poison, match="not a TrackedEvent"):
        await h.processor.on_event(b"ws:anon-1", b'{"type": "teleport", "workspaceId": "ws"}')
    await h.send(track("Product Added", T0, mid="m-bad", price="cheap"))  # no product_id: skipped
    assert h.profile("ws", "anon-1") is None
