"""An unsubscribe through the email's own one-click link stops a message already queued for
the same recipient: the real composer's token, ingest's real endpoint, PostgreSQL, the sender."""

from __future__ import annotations

import asyncio
import secrets
import uuid
from datetime import timedelta
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from retarget.common.clock import SystemClock
from retarget.common.kafka import ensure_topics
from retarget.common.schemas import DeliveryRecorded, Recipient
from retarget.common.topics import Topics
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.composer.compose import Composer
from retarget.composer.render import CampaignTemplates
from retarget.composer.samples import sample_trigger
from retarget.ingest.bootstrap import bootstrap as ingest_bootstrap
from retarget.ingest.main import create_app
from retarget.ingest.settings import IngestSettings
from retarget.sender.settings import SenderSettings

from .conftest import ScriptedSmtp, produce

pytestmark = pytest.mark.integration


async def test_a_one_click_unsubscribe_stops_a_message_already_queued(
    start_sender: Any, sender_settings: SenderSettings, smtp: ScriptedSmtp, workspace_id: str, read_topic: Any
) -> None:
    secret = secrets.token_hex(16)
    shop = Workspace(workspace_id, "Shop", "Shop", "news@shop.example", "1 Main St, Springfield")
    conn = await asyncpg.connect(sender_settings.database_url)
    try:
        await WorkspaceStore(conn).upsert(shop)
    finally:
        await conn.close()

    # the abandoned-cart email, rendered and queued for the sender, not sent yet
    recipient = f"ann-{uuid.uuid4().hex[:8]}@example.com"
    trigger = msgspec.structs.replace(
        sample_trigger("abandoned_cart"), workspace_id=workspace_id, recipient=Recipient(email=recipient)
    )
    composer = Composer(
        CampaignTemplates.from_folder(None),
        SystemClock(),
        link_secret=secret.encode(),
        public_url="http://ingest.test",
        link_ttl=timedelta(days=60),
    )
    queued = composer.compose(trigger, shop).outbound
    await ensure_topics(sender_settings, Topics(sender_settings.topic_prefix).all())
    await produce(sender_settings, queued)

    # the recipient clicks the mailbox's "Unsubscribe" button: RFC 8058 one-click POST
    header = queued.raw.split("\r\nList-Unsubscribe: ", 1)[1].split("\r\nList-Unsubscribe-Post", 1)[0]
    one_click = header.split(">", 1)[0].lstrip("<").replace("http://ingest.test", "")
    ingest_settings = IngestSettings.model_validate(
        {
            "kafka_bootstrap": sender_settings.kafka_bootstrap,
            "database_url": sender_settings.database_url,
            "topic_prefix": sender_settings.topic_prefix,
            "link_secret": secret,
        }
    )
    services = ingest_bootstrap(ingest_settings)
    await services.open()
    try:
        transport = httpx.ASGITransport(app=create_app(ingest_settings, services=services))
        async with httpx.AsyncClient(transport=transport, base_url="http://ingest.test") as client:
            response = await client.post(one_click, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200, response.text
    finally:
        await services.close()

    # only now does a sender pick the queued message up: it must not go out
    sender = await start_sender()
    deliveries = await read_topic(sender.topics.deliveries)
    await deliveries.until(lambda values: any(queued.message_id.encode() in v for v in values))
    outcomes = [
        (d.outcome, d.reason)
        for d in (msgspec.json.decode(v, type=DeliveryRecorded) for v in deliveries.values)
        if d.message_id == queued.message_id
    ]
    assert outcomes == [("suppressed", "unsubscribed")]
    await asyncio.sleep(0.2)
    assert smtp.count(f"<{queued.message_id}@shop.example>") == 0
