"""ConfigFollower on the real broker: ready means caught up to the newest state, later
changes arrive live, and a record it can't decode stalls nothing."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from datetime import UTC, datetime

import pytest
from aiokafka import AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.admin.config_resource import ConfigResource, ConfigResourceType

from retarget.common.kafka import ensure_topics
from retarget.common.settings import CommonSettings
from retarget.common.topics import Topics
from retarget.config.follower import ConfigFollower
from retarget.config.records import ConfigChange, config_topic
from retarget.config.testing import publish_changes

pytestmark = pytest.mark.integration


def change(version: int, name: str = "abandoned_cart", *, deleted: bool = False) -> ConfigChange:
    return ConfigChange(
        workspace_id="shop-1",
        kind="campaign",
        name=name,
        version=version,
        deleted=deleted,
        body=None if deleted else {"name": name, "v": version},
        author="test",
        changed_at=datetime(2026, 11, 29, 15, 0, tzinfo=UTC),
    )


async def publish_junk(bootstrap: str, topic: str, value: bytes) -> None:
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, value, key=b"shop-1/campaign/x")
    finally:
        await producer.stop()


async def eventually(check: Callable[[], bool], timeout_s: float = 60.0) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while not check():
        assert loop.time() < deadline, "not reached before the deadline"
        await asyncio.sleep(0.05)


async def test_a_follower_started_late_sees_only_the_newest_state(stack: dict[str, str], topic_prefix: str):
    bootstrap, topic = stack["RETARGET_KAFKA_BOOTSTRAP"], config_topic(topic_prefix)
    await publish_changes(bootstrap, topic, [change(1), change(2), change(4, "gone")])
    await publish_junk(bootstrap, topic, b"{not json")
    offsets = await publish_changes(bootstrap, topic, [change(3), change(2), change(5, "gone", deleted=True)])

    follower = ConfigFollower(bootstrap, topic)
    heard: list[int] = []
    follower.subscribe(lambda c: heard.append(c.version))
    await follower.start()
    try:
        assert follower.ready and follower.applied_offset == offsets[-1]
        newest = follower.current("shop-1", "campaign", "abandoned_cart")
        assert (
            newest is not None and newest.version == 3 and newest.body == {"name": "abandoned_cart", "v": 3}
        )
        gone = follower.current("shop-1", "campaign", "gone")
        assert gone is not None and gone.deleted and gone.body is None
        assert heard == [1, 2, 4, 3, 5]  # the republished version 2 after 3 is not news
    finally:
        await follower.stop()


async def test_a_change_published_after_start_reaches_the_subscriber(
    stack: dict[str, str], topic_prefix: str
):
    bootstrap, topic = stack["RETARGET_KAFKA_BOOTSTRAP"], config_topic(topic_prefix)
    await ensure_topics(CommonSettings(kafka_bootstrap=bootstrap), [topic])
    follower = ConfigFollower(bootstrap, topic, kinds=["campaign"])
    heard: list[ConfigChange] = []
    follower.subscribe(heard.append)
    await follower.start()  # an empty topic: ready at once
    try:
        assert follower.ready and follower.applied_offset == -1
        await publish_junk(bootstrap, topic, b'{"kind": "campaign"}')  # undecodable: skipped
        await publish_changes(bootstrap, topic, [change(7)])
        await eventually(lambda: len(heard) == 1)
        assert heard[0] == change(7) and follower.applied_offset == 1
    finally:
        await follower.stop()


async def test_the_config_topic_is_created_compacted_with_one_partition(
    stack: dict[str, str], topic_prefix: str
):
    bootstrap = stack["RETARGET_KAFKA_BOOTSTRAP"]
    topics = Topics(topic_prefix)
    await ensure_topics(CommonSettings(kafka_bootstrap=bootstrap), topics.all(), partitions=3)
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        described = await admin.describe_topics([topics.config, topics.events])
        partitions = {t["topic"]: len(t["partitions"]) for t in described}
        [configs] = await admin.describe_configs([ConfigResource(ConfigResourceType.TOPIC, topics.config)])
    finally:
        await admin.close()
    assert partitions == {topics.config: 1, topics.events: 3}
    values = {entry[0]: entry[1] for entry in configs.resources[0][4]}
    assert values["cleanup.policy"] == "compact"
