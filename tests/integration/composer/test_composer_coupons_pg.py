"""The composer's stage handler with the real coupon store on PostgreSQL: the code an email
shows is the row stored for its trigger, a replayed trigger shows the same code and stores
nothing new, and a pool hands each trigger its own code."""

from __future__ import annotations

import email
import uuid
from collections.abc import AsyncIterator
from datetime import UTC, datetime, timedelta
from email.policy import default as default_policy
from types import SimpleNamespace
from typing import Any

import asyncpg
import msgspec
import pytest

from retarget.common.schemas import OutboundMessage, encode
from retarget.common.settings import CommonSettings
from retarget.common.testing import FakeClock
from retarget.common.topics import Topics
from retarget.common.workspaces import Workspace
from retarget.composer.compose import Composer
from retarget.composer.coupons import CouponIssuer
from retarget.composer.handler import TriggerHandler
from retarget.composer.render import CampaignTemplates
from retarget.composer.testing import cart_trigger
from retarget.coupons.store import CouponStore

pytestmark = pytest.mark.integration

FIRED = datetime(2026, 3, 1, tzinfo=UTC)


@pytest.fixture
async def pool(stack: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    db = await asyncpg.create_pool(CommonSettings().database_url, min_size=1, max_size=4)
    yield db
    await db.close()


class Workspaces:
    async def get(self, workspace_id: str) -> Workspace:
        return Workspace(workspace_id, "Boot Shop", "Boot Shop", "news@boots.example", "1 Main St")


def record(workspace_id: str, trigger_id: str, coupon: dict[str, Any]) -> SimpleNamespace:
    incentive = {"kind": "percent_off", "value": 10, "coupon": coupon}
    value = encode(cart_trigger(incentive, trigger_id=trigger_id, workspace_id=workspace_id, fired=FIRED))
    return SimpleNamespace(topic="t.triggers.v1", partition=0, offset=1, key=b"k", value=value)


def handler(pool: asyncpg.Pool) -> TriggerHandler:
    composer = Composer(
        CampaignTemplates.from_folder(None),
        FakeClock(),
        link_secret=b"secret",
        public_url="https://track.example",
        link_ttl=timedelta(days=60),
    )
    return TriggerHandler(composer, Workspaces(), Topics("t"), CouponIssuer(CouponStore(pool)))


def text_of(value: bytes) -> str:
    raw = msgspec.json.decode(value, type=OutboundMessage).raw
    return str(email.message_from_string(raw, policy=default_policy).get_body(("plain",)).get_content())


async def test_a_replayed_trigger_shows_the_stored_code_again(pool, workspace_id) -> None:
    trigger_id = uuid.uuid4().hex
    spec = {"mode": "unique", "expires_after": 86400}
    [first] = await handler(pool).handle([record(workspace_id, trigger_id, spec)])
    [again] = await handler(pool).handle([record(workspace_id, trigger_id, spec)])  # another composer
    rows = await pool.fetch("SELECT code, expires_at FROM coupons WHERE workspace_id = $1", workspace_id)
    assert len(rows) == 1 and rows[0]["expires_at"] == FIRED + timedelta(days=1)
    assert rows[0]["code"] in text_of(first.value) and text_of(again.value) == text_of(first.value)


async def test_pool_codes_go_one_to_each_trigger(pool, workspace_id) -> None:
    await CouponStore(pool).upload(workspace_id, "spring", ["SPRING-A", "SPRING-B"])
    spec = {"mode": "pool", "pool": "spring", "expires_after": 86400}
    triggers = [uuid.uuid4().hex for _ in range(3)]
    outs = await handler(pool).handle([record(workspace_id, t, spec) for t in triggers])
    texts = [text_of(o.value) for o in outs]
    assert "SPRING-A" in texts[0] and "SPRING-B" in texts[1]
    assert "SPRING-" not in texts[2] and "off with code" not in texts[2]  # the pool ran dry: no offer
    [replay] = await handler(pool).handle([record(workspace_id, triggers[1], spec)])
    assert "SPRING-B" in text_of(replay.value)
