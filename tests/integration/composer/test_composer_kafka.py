"""The composer on the real stack: triggers in from Kafka, complete messages out on the
outbound topic (keyed by the recipient address digest), and bad triggers on the dead-letter topic."""

from __future__ import annotations

import asyncio
import email
import hashlib
import re
import secrets
import uuid
from collections.abc import AsyncIterator
from email.policy import default as default_policy

import asyncpg
import msgspec
import pytest

from retarget.common.kafka import ensure_topics, make_consumer, make_producer
from retarget.common.schemas import DeadLettered, OutboundMessage, encode
from retarget.common.tokens import verify
from retarget.common.topics import Topics, profile_key
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.composer.bootstrap import ComposerService, bootstrap
from retarget.composer.samples import sample_trigger
from retarget.composer.settings import ComposerSettings

pytestmark = pytest.mark.integration


@pytest.fixture
async def settings(
    stack: dict[str, str], topic_prefix: str, workspace_id: str
) -> AsyncIterator[ComposerSettings]:
    settings = ComposerSettings.model_validate(
        {
            "kafka_bootstrap": stack["RETARGET_KAFKA_BOOTSTRAP"],
            "database_url": stack["RETARGET_DATABASE_URL"],
            "topic_prefix": topic_prefix,
            "topic_partitions": 2,
            "link_secret": secrets.token_hex(16),
            "public_url": "https://track.example",
        }
    )
    await ensure_topics(settings, Topics(topic_prefix).all())
    conn = await asyncpg.connect(settings.database_url)
    try:
        await WorkspaceStore(conn).upsert(
            Workspace(workspace_id, "Boot Shop", "Boot Shop", "news@boots.example", "1 Main St, Springfield")
        )
        yield settings
        await conn.execute("DELETE FROM workspaces WHERE id = $1", workspace_id)
    finally:
        await conn.close()


@pytest.fixture
async def composer(settings: ComposerSettings) -> AsyncIterator[ComposerService]:
    service = await bootstrap(settings)
    await service.start()
    stop = asyncio.Event()
    task = asyncio.create_task(service.stage.run(stop))
    yield service
    stop.set()
    await asyncio.wait_for(task, 30)
    await service.close()


async def read(settings: ComposerSettings, topic: str, count: int, timeout_s: float = 30) -> list:
    consumer = make_consumer(settings, topic, group_id=f"reader-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    records: list = []
    try:
        async with asyncio.timeout(timeout_s):
            while len(records) < count:
                batches = await consumer.getmany(timeout_ms=200)
                records.extend(r for part in batches.values() for r in part)
    finally:
        await consumer.stop()
    return records


async def test_triggers_become_outbound_messages_and_bad_ones_dead_letters(
    settings: ComposerSettings, composer: ComposerService, workspace_id: str
):
    topics = Topics(settings.topic_prefix)
    good = msgspec.structs.replace(sample_trigger("abandoned_cart"), workspace_id=workspace_id)
    bad_address = msgspec.structs.replace(
        good, trigger_id="b" * 32, recipient=msgspec.structs.replace(good.recipient, email="nope")
    )
    missing_data = msgspec.structs.replace(
        sample_trigger("browse_abandonment", {"data": {}}), workspace_id=workspace_id
    )
    producer = make_producer(settings)
    await producer.start()
    try:
        key = profile_key(workspace_id, good.profile_id)
        for value in (encode(good), encode(bad_address), encode(missing_data), b"{oops"):
            await producer.send_and_wait(topics.triggers, value, key=key)
    finally:
        await producer.stop()

    [out] = await read(settings, topics.outbound, 1)
    # the address digest, never the address or its domain (every domain spreads over partitions)
    assert out.key == hashlib.sha256(b"ann@example.com").hexdigest().encode()
    outbound = msgspec.json.decode(out.value, type=OutboundMessage)
    assert (outbound.workspace_id, outbound.campaign, outbound.recipient) == (
        workspace_id,
        "abandoned_cart",
        "ann@example.com",
    )
    msg = email.message_from_string(outbound.raw, policy=default_policy)
    assert msg["Subject"] == "Ann, you left something in your cart"
    assert msg["List-Unsubscribe"].startswith("<https://track.example/t/u/")

    letters = [
        msgspec.json.decode(r.value, type=DeadLettered) for r in await read(settings, topics.dead_letter, 3)
    ]
    reasons = sorted(letter.reason for letter in letters)
    assert len(reasons) == 3 and all(letter.stage == "composer" for letter in letters)
    assert any("valid email" in r for r in reasons)
    assert any("browse_abandonment.subject.txt:1" in r and "products" in r for r in reasons)
    assert any("undecodable" in r for r in reasons)


async def test_a_product_url_outside_the_workspace_domains_in_postgresql_is_not_linked(
    settings: ComposerSettings, workspace_id: str
):
    """The workspace's link domains come from PostgreSQL: its CDN's image is kept, the
    phishing page sent in an event is neither shown nor signed into a click link."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        await WorkspaceStore(conn).upsert(
            Workspace(
                workspace_id,
                "Boot Shop",
                "Boot Shop",
                "news@boots.example",
                "1 Main St, Springfield",
                link_domains=("boots.example", "cdn.example"),
            )
        )
    finally:
        await conn.close()
    products = [
        {
            "name": "Trail Boot",
            "url": "https://evil.example/login",
            "image_url": "https://img.cdn.example/b.jpg",
        },
        {
            "name": "Wool Socks",
            "url": "https://www.boots.example/p/socks",
            "image_url": "https://evil.example/s.png",
        },
    ]
    trigger = msgspec.structs.replace(
        sample_trigger("browse_abandonment", {"data": {"products": products}}), workspace_id=workspace_id
    )
    topics = Topics(settings.topic_prefix)
    producer = make_producer(settings)
    await producer.start()
    try:
        await producer.send_and_wait(
            topics.triggers, encode(trigger), key=profile_key(workspace_id, trigger.profile_id)
        )
    finally:
        await producer.stop()

    service = await bootstrap(settings)
    await service.start()
    stop = asyncio.Event()
    task = asyncio.create_task(service.stage.run(stop))
    try:
        [out] = await read(settings, topics.outbound, 1)
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await service.close()
    outbound = msgspec.json.decode(out.value, type=OutboundMessage)
    msg = email.message_from_string(outbound.raw, policy=default_policy)
    html = msg.get_body(("html",)).get_content()
    assert "evil.example" not in html and 'src="https://img.cdn.example/b.jpg"' in html
    secret = settings.link_secret.get_secret_value().encode()
    destinations = {
        verify(token, secret, now=0, kind="click").url
        for token in re.findall(r"/t/c/([A-Za-z0-9_.-]+)", html)
    }
    assert destinations == {"https://boots.example/", "https://www.boots.example/p/socks"}
