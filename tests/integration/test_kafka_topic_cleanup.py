"""Tests and benchmarks delete the topics they made, by prefix, and only those."""

from __future__ import annotations

import uuid

from aiokafka.admin import AIOKafkaAdminClient

from retarget.common.kafka import delete_topics_with_prefixes, ensure_topics
from retarget.common.settings import CommonSettings


async def test_only_the_topics_with_the_given_prefixes_are_deleted(stack: dict[str, str]):
    bootstrap = stack["RETARGET_KAFKA_BOOTSTRAP"]
    mine, other = f"c{uuid.uuid4().hex[:10]}", f"c{uuid.uuid4().hex[:10]}"
    settings = CommonSettings(kafka_bootstrap=bootstrap, topic_partitions=1)
    await ensure_topics(
        settings, [f"{mine}.events.v1", f"{mine}-segmenter-due-changelog", f"{other}.events.v1"]
    )

    deleted = await delete_topics_with_prefixes(bootstrap, {mine})

    assert sorted(deleted) == sorted([f"{mine}.events.v1", f"{mine}-segmenter-due-changelog"])
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        left = set(await admin.list_topics())
    finally:
        await admin.close()
    assert f"{other}.events.v1" in left and not any(t.startswith(mine) for t in left)
    await delete_topics_with_prefixes(bootstrap, {other})
