"""Erasure requests reach every key holding the person's state: profile, redirects, due entry, and
other profiles with the same address (found by a scan of every partition)."""

from __future__ import annotations

from datetime import UTC, datetime, timedelta

import pytest

from retarget.common.identity import email_digest
from retarget.common.privacy import erasure_records
from retarget.common.testing import FakeClock
from retarget.segmenter.campaigns import load_campaigns
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR
from retarget.segmenter.testing import Harness, identify, track

T0 = datetime(2026, 3, 1, 10, 0, tzinfo=UTC)
CAMPAIGNS = load_campaigns(DEFAULT_CAMPAIGNS_DIR, waits={"abandoned_cart": "30m"})
ANN = "Ann@Example.com"


@pytest.fixture
def h() -> Harness:
    return Harness(CAMPAIGNS, clock=FakeClock(T0))


def cart_add(at: datetime, mid: str, **ids):
    return track("Product Added", at, mid=mid, product_id="p1", name="Boots", price=80, **ids)


async def erase(h: Harness, *, user_id: str | None = None, email: str | None = None) -> None:
    records = erasure_records(
        "ws",
        request_id="r-1",
        requested_at=T0,
        profile_ids=[user_id] if user_id else [],
        email_hashes=[email_digest(email)] if email else [],
        user_id=user_id,
    )
    for key, value in records:
        await h.processor.on_privacy(key, value)
    await h.deliver()


async def known_visitor(h: Harness) -> None:
    """An anonymous cart, then a login: a redirect anon-1 -> u-1 (and anon-2), a due entry."""
    await h.send(cart_add(T0, "add", anonymous_id="anon-1"))
    await h.send(
        identify(T0 + timedelta(minutes=1), mid="id", anonymous_id="anon-1", user_id="u-1", email=ANN)
    )
    await h.send(cart_add(T0 + timedelta(minutes=2), "add-2", anonymous_id="anon-2", user_id="u-1"))
    assert h.profile("ws", "anon-1").merged_into == "u-1"  # type: ignore[union-attr]
    assert {b"ws:u-1"} == set(h.due)


async def test_erasing_by_user_id_deletes_the_profile_its_redirects_and_due_entry(h: Harness):
    await known_visitor(h)
    await h.send(track("Product Viewed", T0, mid="solo", anonymous_id="someone-else", product_id="p2"))
    await h.send(identify(T0, mid="same", anonymous_id="anon-7", email="ANN@example.com"))  # never logged in

    await erase(h, user_id="u-1")

    assert set(h.profiles) == {b"ws:someone-else"}  # profile, both redirects, same address: gone
    assert set(h.due) == {b"ws:someone-else"}
    h.clock.advance(hours=1)
    assert await h.run_timer() == []  # the heap's stale entry is dropped, nothing fires


async def test_erasing_by_email_alone_finds_anonymous_and_known_profiles_with_that_address(h: Harness):
    await known_visitor(h)
    await h.send(identify(T0, mid="other", anonymous_id="anon-9", email="ann@example.com "))  # same person
    await h.send(identify(T0, mid="bob", anonymous_id="anon-bob", email="bob@example.com"))

    await erase(h, email="ANN@example.com")

    assert set(h.profiles) == {b"ws:anon-bob"}
    assert dict(h.due) == {}


async def test_a_replayed_or_unknown_erasure_changes_nothing(h: Harness):
    await erase(h, user_id="nobody", email="nobody@example.com")
    assert not h.profiles
    await known_visitor(h)
    await erase(h, user_id="u-1")
    await erase(h, user_id="u-1")
    assert not h.profiles and not h.due


async def test_the_same_person_coming_back_starts_a_new_profile(h: Harness):
    await known_visitor(h)
    await erase(h, user_id="u-1")
    await h.send(identify(T0 + timedelta(hours=1), mid="back", user_id="u-1", anonymous_id=None, email=ANN))
    profile = h.profile("ws", "u-1")
    assert profile is not None and profile.cart == {} and profile.aliases == []


async def test_another_workspace_with_the_same_address_is_left_alone(h: Harness):
    await h.send(identify(T0, mid="a", anonymous_id="v1", email=ANN))
    await h.send(identify(T0, mid="b", anonymous_id="v1", email=ANN, workspace_id="other"))
    await erase(h, email=ANN)
    assert set(h.profiles) == {b"other:v1"}


async def test_a_scan_matches_the_normalised_address_only():
    from retarget.segmenter.erasure import profiles_with_address

    items = [
        (b"ws:a", b'{"workspace_id":"ws","profile_id":"a","email":" Ann@Example.COM"}'),
        (b"ws:b", b'{"workspace_id":"ws","profile_id":"b","email":"ann@example.org"}'),
        (b"ws:c", b'{"workspace_id":"ws","profile_id":"c","merged_into":"a"}'),
        (b"wsx:d", b'{"workspace_id":"wsx","profile_id":"d","email":"ann@example.com"}'),
    ]
    assert await profiles_with_address(items, "ws", email_digest("ann@example.com")) == [b"ws:a"]


def test_a_partition_scan_sees_exactly_the_keys_the_producer_sends_there():
    from types import SimpleNamespace

    from aiokafka.partitioner import DefaultPartitioner

    from retarget.segmenter.ops import partition_items

    items = {f"ws:v{i}".encode(): b"{}" for i in range(50)}
    table = SimpleNamespace(data=object(), items=items.items)  # the memory store: no per-partition dbs
    seen = {p: {k for k, _ in partition_items(table, p, 4)} for p in range(4)}
    assert set().union(*seen.values()) == set(items) and sum(map(len, seen.values())) == len(items)
    partitioner = DefaultPartitioner()
    assert all(partitioner(k, [0, 1, 2, 3], [0, 1, 2, 3]) == p for p, keys in seen.items() for k in keys)
