"""Fixtures of the config tests: a pool and a producer on the real stack, this test's
config topic, a workspace, and a ConfigService writing through them."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator, Callable
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from retarget.common.kafka import ensure_topics
from retarget.common.settings import CommonSettings
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.config.records import ConfigChange, config_topic, decode
from retarget.config.service import ConfigService


@pytest.fixture
async def pool(stack: dict[str, str]) -> AsyncIterator[asyncpg.Pool]:
    created = await asyncpg.create_pool(stack["RETARGET_DATABASE_URL"], min_size=1, max_size=4)
    assert created is not None
    yield created
    await created.close()


@pytest.fixture
async def producer(stack: dict[str, str]) -> AsyncIterator[AIOKafkaProducer]:
    started = AIOKafkaProducer(
        bootstrap_servers=stack["RETARGET_KAFKA_BOOTSTRAP"], acks="all", enable_idempotence=True
    )
    await started.start()
    yield started
    await started.stop()


@pytest.fixture
async def config_feed(stack: dict[str, str], topic_prefix: str) -> str:
    topic = config_topic(topic_prefix)
    await ensure_topics(CommonSettings(kafka_bootstrap=stack["RETARGET_KAFKA_BOOTSTRAP"]), [topic])
    return topic


@pytest.fixture
async def workspace(pool: asyncpg.Pool, workspace_id: str) -> str:
    await WorkspaceStore(pool).upsert(
        Workspace(
            id=workspace_id,
            name="Config test",
            from_name="Shop",
            from_email="shop@example.com",
            postal_address="1 Test Street, Testville",
        )
    )
    return workspace_id


@pytest.fixture
def service(pool: asyncpg.Pool, producer: AIOKafkaProducer, config_feed: str) -> ConfigService:
    return ConfigService(pool, producer, config_feed)


FeedReader = Callable[[], Any]


@pytest.fixture
def read_feed(stack: dict[str, str], config_feed: str) -> Callable[[], Any]:
    """read_feed(): every record of this test's config topic, in order, decoded."""

    async def read() -> list[tuple[int, ConfigChange]]:
        consumer = AIOKafkaConsumer(bootstrap_servers=stack["RETARGET_KAFKA_BOOTSTRAP"], group_id=None)
        await consumer.start()
        try:
            partition = TopicPartition(config_feed, 0)
            consumer.assign([partition])
            await consumer.seek_to_beginning(partition)
            end = (await consumer.end_offsets([partition]))[partition]
            found: list[tuple[int, ConfigChange]] = []
            async with asyncio.timeout(60):
                while await consumer.position(partition) < end:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        found.extend((r.offset, decode(r.key or b"", r.value or b"")) for r in records)
            return found
        finally:
            await consumer.stop()

    return read
