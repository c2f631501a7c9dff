"""The composer issues a campaign's coupon before the message exists: unique codes stored
(idempotent on trigger_id), pool codes claimed once per trigger, an empty pool sends the email
without the offer, a malformed spec is dead-lettered and a database that is away escapes
(the stage retries the batch: nothing is published with a code that isn't stored)."""

from __future__ import annotations

import asyncio
import email
from datetime import UTC, datetime, timedelta
from email.policy import default as default_policy
from types import SimpleNamespace
from typing import Any

import msgspec
import pytest

from retarget.common.schemas import DeadLettered, OutboundMessage, TriggerFired, encode
from retarget.common.testing import FakeClock
from retarget.common.topics import Topics
from retarget.common.workspaces import Workspace
from retarget.composer.compose import Composer
from retarget.composer.coupons import CouponIssuer
from retarget.composer.handler import TriggerHandler
from retarget.composer.render import CampaignTemplates
from retarget.composer.testing import FakeCoupons, cart_trigger
from retarget.coupons.rules import Coupon
from retarget.coupons.store import Issue

SENDER = Workspace("ws", "Boot Shop", "Boot Shop", "news@boots.example", "1 Main St, Springfield")
FIRED = datetime(2026, 3, 1, tzinfo=UTC)
UNIQUE = {"kind": "percent_off", "value": 10, "coupon": {"mode": "unique", "expires_after": 86400}}
POOL = {
    "kind": "percent_off",
    "value": 10,
    "coupon": {"mode": "pool", "pool": "spring", "expires_after": 86400},
}


class Workspaces:
    async def get(self, workspace_id: str) -> Workspace:
        return SENDER


def trigger(incentive: dict[str, Any], trigger_id: str = "t" * 32) -> bytes:
    return encode(cart_trigger(incentive, trigger_id=trigger_id, fired=FIRED))


def handler(store: Any) -> TriggerHandler:
    composer = Composer(
        CampaignTemplates.from_folder(None),
        FakeClock(),
        link_secret=b"secret",
        public_url="https://track.example",
        link_ttl=timedelta(days=60),
    )
    return TriggerHandler(composer, Workspaces(), Topics("t"), CouponIssuer(store))


def record(value: bytes) -> SimpleNamespace:
    return SimpleNamespace(topic="t.triggers.v1", partition=0, offset=7, key=b"ws:anon-1", value=value)


def text_of(value: bytes) -> str:
    raw = msgspec.json.decode(value, type=OutboundMessage).raw
    return str(email.message_from_string(raw, policy=default_policy).get_body(("plain",)).get_content())


async def test_a_unique_code_is_stored_with_its_expiry_and_a_replay_shows_the_same() -> None:
    store = FakeCoupons()
    h = handler(store)
    [first] = await h.handle([record(trigger(UNIQUE))])
    [coupon] = store.issued.values()
    assert coupon.code == h.composer.coupon(msgspec.json.decode(trigger(UNIQUE), type=TriggerFired))
    assert (coupon.mode, coupon.trigger_id, coupon.expires_at) == (
        "unique",
        "t" * 32,
        FIRED + timedelta(days=1),
    )
    assert coupon.code in text_of(first.value)
    [again] = await h.handle([record(trigger(UNIQUE))])
    assert len(store.issued) == 1 and text_of(again.value) == text_of(first.value)


async def test_a_pool_code_is_claimed_once_per_trigger() -> None:
    store = FakeCoupons({("ws", "spring"): ["SPRING-1", "SPRING-2", "SPRING-3"]})
    h = handler(store)
    [first] = await h.handle([record(trigger(POOL))])
    assert "SPRING-1" in text_of(first.value)
    [replay, other] = await h.handle([record(trigger(POOL)), record(trigger(POOL, "u" * 32))])
    assert "SPRING-1" in text_of(replay.value) and "SPRING-2" in text_of(other.value)
    assert store.pools["ws", "spring"] == ["SPRING-3"]


async def test_an_empty_pool_sends_the_email_without_the_offer() -> None:
    [out] = await handler(FakeCoupons()).handle([record(trigger(POOL))])
    text = text_of(out.value)
    assert out.topic == "t.outbound.v1"
    assert "off with code" not in text and "RT-" not in text


async def test_without_a_coupon_spec_the_derived_code_shows_and_nothing_is_stored() -> None:
    store = FakeCoupons()
    [out] = await handler(store).handle([record(trigger({"kind": "percent_off", "value": 10}))])
    assert "RT-" in text_of(out.value) and store.issued == {}


async def test_a_malformed_coupon_spec_is_dead_lettered_naming_it() -> None:
    bad = {"kind": "percent_off", "value": 10, "coupon": {"mode": "pool"}}
    [out] = await handler(FakeCoupons()).handle([record(trigger(bad))])
    dead = msgspec.json.decode(out.value, type=DeadLettered)
    assert out.topic == "t.dead-letter.v1" and "coupon" in dead.reason and "pool" in dead.reason


class DatabaseAway(FakeCoupons):
    async def issue_unique(self, issue: Any, code: str) -> Any:
        raise ConnectionRefusedError("PostgreSQL is away")


async def test_a_database_that_is_away_fails_the_batch_so_nothing_unstored_is_sent() -> None:
    with pytest.raises(ConnectionRefusedError):
        await handler(DatabaseAway()).handle([record(trigger(UNIQUE))])


async def test_a_batch_stores_its_unique_codes_concurrently_and_keeps_the_records_order() -> None:
    """One round trip after the other, the database's latency set the composer's rate
    (bench_pipeline.py): every unique issue of a batch must be in flight at once."""
    batch = 4
    in_flight, all_in = 0, asyncio.Event()

    class SlowCoupons(FakeCoupons):
        async def issue_unique(self, issue: Issue, code: str) -> Coupon:
            nonlocal in_flight
            in_flight += 1
            if in_flight == batch:
                all_in.set()
            await asyncio.wait_for(all_in.wait(), timeout=10)  # one at a time: this times out
            return await super().issue_unique(issue, code)

    ids = [f"{i:032x}" for i in range(batch)]
    outs = await handler(SlowCoupons()).handle([record(trigger(UNIQUE, trigger_id=t)) for t in ids])
    assert [msgspec.json.decode(o.value, type=OutboundMessage).trigger_id for o in outs] == ids
