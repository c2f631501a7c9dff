"""The composer issues a campaign's coupon before the message exists: unique codes stored
(idempotent on trigger_id), pool codes claimed once per trigger, an empty pool sends the email
without the offer, a malformed spec is dead-lettered and a database that is away escapes
(the stage retries the batch: nothing is published with a code that isn't stored)."""

from __future__ import annotations

import email
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from email.policy import default as default_policy
from types import SimpleNamespace
from typing import Any

import asyncpg
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
from retarget.coupons.store import CodeTaken, Issue

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
    async def issue_unique_batch(self, wanted: Any) -> Any:
        raise ConnectionRefusedError("PostgreSQL is away")


async def test_a_database_that_is_away_fails_the_batch_so_nothing_unstored_is_sent() -> None:
    with pytest.raises(ConnectionRefusedError):
        await handler(DatabaseAway()).handle([record(trigger(UNIQUE))])


async def test_a_batch_stores_its_unique_codes_in_one_call_and_keeps_the_records_order() -> None:
    """A round trip and a pool checkout per code cost the composer more CPU than rendering
    (bench_composer_process.py): a batch's unique codes are stored in one call."""
    calls: list[int] = []

    class CountingCoupons(FakeCoupons):
        async def issue_unique_batch(self, wanted: Sequence[tuple[Issue, str]]) -> list[Coupon | CodeTaken]:
            calls.append(len(wanted))
            return await super().issue_unique_batch(wanted)

    ids = [f"{i:032x}" for i in range(4)]
    outs = await handler(CountingCoupons()).handle([record(trigger(UNIQUE, trigger_id=t)) for t in ids])
    assert [msgspec.json.decode(o.value, type=OutboundMessage).trigger_id for o in outs] == ids
    assert calls == [4]


async def test_a_batch_postgresql_refuses_is_stored_one_by_one_so_only_the_bad_trigger_fails() -> None:
    class RefusesNul(FakeCoupons):
        async def issue_unique_batch(self, wanted: Sequence[tuple[Issue, str]]) -> list[Coupon | CodeTaken]:
            if any("\x00" in issue.trigger_id for issue, _ in wanted):
                raise asyncpg.UntranslatableCharacterError("unsupported Unicode escape sequence")
            return await super().issue_unique_batch(wanted)

    ids = ["a" * 32, "b\x00" + "b" * 30, "c" * 32]
    store = RefusesNul()
    outs = await handler(store).handle([record(trigger(UNIQUE, trigger_id=t)) for t in ids])
    assert [o.topic for o in outs] == ["t.outbound.v1", "t.dead-letter.v1", "t.outbound.v1"]
    assert "coupon" in msgspec.json.decode(outs[1].value, type=DeadLettered).reason
    assert sorted(t for _, t in store.issued) == ["a" * 32, "c" * 32]


async def test_a_code_another_trigger_holds_dead_letters_only_that_trigger() -> None:
    class OneTaken(FakeCoupons):
        async def issue_unique_batch(self, wanted: Sequence[tuple[Issue, str]]) -> list[Coupon | CodeTaken]:
            stored = await super().issue_unique_batch(wanted)
            return [CodeTaken("taken") if i == 0 else c for i, c in enumerate(stored)]

    outs = await handler(OneTaken()).handle(
        [record(trigger(UNIQUE, trigger_id=t)) for t in ("a" * 32, "b" * 32)]
    )
    assert [o.topic for o in outs] == ["t.dead-letter.v1", "t.outbound.v1"]


async def test_a_database_away_fails_the_batch_once_without_a_try_per_code() -> None:
    # only a data error (the same on every try) is worth storing the codes one by one; with
    # PostgreSQL away the batch is retried whole, not hammered with a statement per code first
    calls: list[int] = []

    class Away(FakeCoupons):
        async def issue_unique_batch(self, wanted: Sequence[tuple[Issue, str]]) -> list[Coupon | CodeTaken]:
            calls.append(len(wanted))
            raise ConnectionRefusedError("PostgreSQL is away")

    with pytest.raises(ConnectionRefusedError):
        await handler(Away()).handle([record(trigger(UNIQUE, trigger_id=t)) for t in ("a" * 32, "b" * 32)])
    assert calls == [2]


async def test_each_unique_code_stored_in_a_batch_is_counted() -> None:
    from retarget.composer.metrics import COUPONS_ISSUED

    campaign = msgspec.json.decode(trigger(UNIQUE), type=TriggerFired).campaign
    before = COUPONS_ISSUED.labels(campaign, "unique")._value.get()
    await handler(FakeCoupons()).handle([record(trigger(UNIQUE, trigger_id=t)) for t in ("a" * 32, "b" * 32)])
    assert COUPONS_ISSUED.labels(campaign, "unique")._value.get() - before == 2
