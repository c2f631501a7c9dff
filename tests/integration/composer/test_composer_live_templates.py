"""Each workspace's templates, live, on the real stack: template records published to the
config feed reach a running composer (no restart), two workspaces get different emails for
the same trigger, a template can't reach another workspace's template or a file, and an
identity record makes the next message use the new sender at once."""

from __future__ import annotations

import asyncio
import email
import secrets
import uuid
from collections.abc import AsyncIterator, Callable
from datetime import UTC, datetime
from email.message import EmailMessage
from email.policy import default as default_policy
from typing import Any

import asyncpg
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer

from retarget.common.kafka import ensure_topics, make_consumer, make_producer
from retarget.common.schemas import DeadLettered, OutboundMessage, TriggerFired, encode
from retarget.common.topics import Topics, profile_key
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.composer.bootstrap import ComposerService, bootstrap
from retarget.composer.samples import sample_trigger
from retarget.composer.settings import ComposerSettings
from retarget.config.records import ConfigChange
from retarget.config.testing import publish_changes

pytestmark = pytest.mark.integration

SHOP_B = "Hat Shop"


@pytest.fixture
async def shops(stack: dict[str, str], topic_prefix: str) -> AsyncIterator[tuple[ComposerSettings, str, str]]:
    """Settings for a composer on a fresh topic prefix, and two workspaces in PostgreSQL."""
    settings = ComposerSettings.model_validate(
        {
            "kafka_bootstrap": stack["RETARGET_KAFKA_BOOTSTRAP"],
            "database_url": stack["RETARGET_DATABASE_URL"],
            "topic_prefix": topic_prefix,
            "topic_partitions": 2,
            "link_secret": secrets.token_hex(16),
            "public_url": "https://track.example",
            "workspace_cache_s": 3600,  # only the feed can make a change visible within a test
        }
    )
    await ensure_topics(settings, Topics(topic_prefix).all())
    a, b = f"ws-{uuid.uuid4().hex[:8]}", f"ws-{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(settings.database_url)
    try:
        store = WorkspaceStore(conn)
        await store.upsert(
            Workspace(a, "Boot Shop", "Boot Shop", "news@boots.example", "1 Main St, Springfield")
        )
        await store.upsert(Workspace(b, SHOP_B, SHOP_B, "news@hats.example", "2 High St, Shelbyville"))
        yield settings, a, b
        await conn.execute("DELETE FROM workspaces WHERE id = ANY($1)", [a, b])
    finally:
        await conn.close()


@pytest.fixture
async def running(shops: tuple[ComposerSettings, str, str]) -> AsyncIterator[ComposerService]:
    service = await bootstrap(shops[0])
    await service.start()
    stop = asyncio.Event()
    task = asyncio.create_task(service.stage.run(stop))
    yield service
    stop.set()
    await asyncio.wait_for(task, 30)
    await service.close()


class Outputs:
    """Outbound messages and dead letters of one topic prefix, by trigger id."""

    def __init__(self, settings: ComposerSettings) -> None:
        topics = Topics(settings.topic_prefix)
        self.consumer: AIOKafkaConsumer = make_consumer(
            settings, topics.outbound, topics.dead_letter, group_id=f"reader-{uuid.uuid4().hex[:8]}"
        )
        self.topics = topics
        self.seen: dict[str, OutboundMessage | DeadLettered] = {}

    async def wait_for(self, trigger_id: str, timeout_s: float = 60) -> OutboundMessage | DeadLettered:
        async with asyncio.timeout(timeout_s):
            while trigger_id not in self.seen:
                for part, records in (await self.consumer.getmany(timeout_ms=200)).items():
                    for record in records:
                        if part.topic == self.topics.outbound:
                            out = msgspec.json.decode(record.value, type=OutboundMessage)
                            self.seen[out.trigger_id] = out
                        else:
                            letter = msgspec.json.decode(record.value, type=DeadLettered)
                            trigger = msgspec.json.decode(letter.value, type=TriggerFired)
                            self.seen[trigger.trigger_id] = letter
        return self.seen[trigger_id]


@pytest.fixture
async def outputs(shops: tuple[ComposerSettings, str, str]) -> AsyncIterator[Outputs]:
    reader = Outputs(shops[0])
    await reader.consumer.start()
    yield reader
    await reader.consumer.stop()


def template(
    workspace_id: str, version: int, subject: str, content: str, name: str = "abandoned_cart"
) -> ConfigChange:
    html = '{% extends "base.html" %}{% block content %}' + content + "{% endblock %}"
    return ConfigChange(
        workspace_id=workspace_id,
        kind="template",
        name=name,
        version=version,
        deleted=False,
        body={"subject": subject, "html": html, "text": None},
        author="test",
        changed_at=datetime.now(UTC),
    )


async def send(settings: ComposerSettings, workspace_id: str) -> str:
    """One abandoned-cart trigger for `workspace_id`; its id."""
    trigger = msgspec.structs.replace(
        sample_trigger("abandoned_cart"), workspace_id=workspace_id, trigger_id=uuid.uuid4().hex
    )
    producer = make_producer(settings)
    await producer.start()
    try:
        topic = Topics(settings.topic_prefix).triggers
        await producer.send_and_wait(
            topic, encode(trigger), key=profile_key(workspace_id, trigger.profile_id)
        )
    finally:
        await producer.stop()
    return trigger.trigger_id


def message(output: Any) -> EmailMessage:
    assert isinstance(output, OutboundMessage), output
    return email.message_from_string(output.raw, policy=default_policy)  # type: ignore[return-value]


async def eventually(check: Callable[[], bool], timeout_s: float = 60) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        assert loop.time() < deadline, "not reached before the deadline"
        await asyncio.sleep(0.05)


async def test_two_workspaces_get_their_own_email_for_the_same_trigger(
    shops: tuple[ComposerSettings, str, str], outputs: Outputs
):
    settings, a, b = shops
    await publish_changes(
        settings.kafka_bootstrap,
        Topics(settings.topic_prefix).config,
        [
            template(a, 1, "Boots, {{ recipient.first_name }}", "<p>A-BODY</p>"),
            template(b, 2, "Hats for {{ recipient.first_name }}", "<p>B-BODY</p>"),
        ],
    )
    service = await bootstrap(settings)  # started after the records: ready means it read them
    await service.start()
    stop = asyncio.Event()
    task = asyncio.create_task(service.stage.run(stop))
    try:
        mail_a = message(await outputs.wait_for(await send(settings, a)))
        mail_b = message(await outputs.wait_for(await send(settings, b)))
    finally:
        stop.set()
        await asyncio.wait_for(task, 30)
        await service.close()
    assert (mail_a["Subject"], mail_b["Subject"]) == ("Boots, Ann", "Hats for Ann")
    html_a, html_b = (m.get_body(("html",)).get_content() for m in (mail_a, mail_b))  # type: ignore[union-attr]
    assert "A-BODY" in html_a and "B-BODY" not in html_a and "Boot Shop · 1 Main St" in html_a
    assert "B-BODY" in html_b and "A-BODY" not in html_b and "Hat Shop · 2 High St" in html_b


async def test_a_template_published_while_running_is_used_for_the_next_trigger(
    shops: tuple[ComposerSettings, str, str], running: ComposerService, outputs: Outputs
):
    settings, a, b = shops
    feed = Topics(settings.topic_prefix).config
    assert (
        message(await outputs.wait_for(await send(settings, a)))["Subject"]
        == "Ann, you left something in your cart"
    )

    await publish_changes(
        settings.kafka_bootstrap, feed, [template(a, 10, "New: {{ recipient.first_name }}", "v10")]
    )
    await eventually(
        lambda: getattr(running.follower.current(a, "template", "abandoned_cart"), "version", 0) == 10
    )
    assert message(await outputs.wait_for(await send(settings, a)))["Subject"] == "New: Ann"
    assert (
        message(await outputs.wait_for(await send(settings, b)))["Subject"]
        == "Ann, you left something in your cart"
    )

    deleted = ConfigChange(a, "template", "abandoned_cart", 11, True, None, "test", datetime.now(UTC))
    await publish_changes(settings.kafka_bootstrap, feed, [deleted])
    await eventually(
        lambda: getattr(running.follower.current(a, "template", "abandoned_cart"), "version", 0) == 11
    )
    letter = await outputs.wait_for(await send(settings, a))
    assert isinstance(letter, DeadLettered), letter
    assert f"template abandoned_cart is deleted in workspace {a}" in letter.reason


@pytest.mark.parametrize(
    "include",
    ["{other}\x1f5\x1fsecret.html", "secret.html", "../../../../etc/passwd", "/etc/passwd"],
)
async def test_a_template_cannot_include_another_workspaces_template_or_a_file(
    shops: tuple[ComposerSettings, str, str], running: ComposerService, outputs: Outputs, include: str
):
    settings, a, b = shops
    target = include.format(other=b)
    await publish_changes(
        settings.kafka_bootstrap,
        Topics(settings.topic_prefix).config,
        [
            template(b, 5, "secret", "B-SECRET", name="secret"),
            template(a, 6, "x", "{% include " + repr(target) + " %}"),
        ],
    )
    await eventually(lambda: running.follower.current(a, "template", "abandoned_cart") is not None)
    letter = await outputs.wait_for(await send(settings, a))
    assert isinstance(letter, DeadLettered), letter
    assert "not found" in letter.reason and "B-SECRET" not in letter.reason
    assert letter.reason.startswith("template error: ")


async def test_an_identity_record_makes_the_next_message_use_the_new_sender(
    shops: tuple[ComposerSettings, str, str], running: ComposerService, outputs: Outputs
):
    settings, a, _ = shops
    assert "Boot Shop" in message(await outputs.wait_for(await send(settings, a)))["From"]
    conn = await asyncpg.connect(settings.database_url)
    try:  # what the writers do: the table first, then the feed record
        await conn.execute("UPDATE workspaces SET from_name = 'Boots & Co' WHERE id = $1", a)
    finally:
        await conn.close()
    assert "Boot Shop" in message(await outputs.wait_for(await send(settings, a)))["From"]  # cached (1 h)
    identity = ConfigChange(
        a, "identity", "", 20, False, {"from_name": "Boots & Co"}, "test", datetime.now(UTC)
    )
    await publish_changes(settings.kafka_bootstrap, Topics(settings.topic_prefix).config, [identity])
    await eventually(lambda: running.follower.current(a, "identity") is not None)
    assert "Boots & Co" in message(await outputs.wait_for(await send(settings, a)))["From"]
