"""Kafka clients built the same way everywhere.

Producers are idempotent with acks=all: a send counts only once every in-sync replica has
it, and a retried send can't duplicate. Consumers never auto-commit: a stage commits an
offset only after what it produced from that record is acknowledged (at-least-once between
services; the effects downstream are idempotent, so the visible result is once).
"""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from aiokafka.codec import has_lz4
from aiokafka.errors import TopicAlreadyExistsError

from retarget.common.settings import CommonSettings
from retarget.common.topics import topic_layout

log = logging.getLogger(__name__)


def _compression() -> str:
    # lz4 is cheap on CPU; aiokafka gets it from cramjam (aiokafka[lz4]), not the lz4 package
    return "lz4" if has_lz4() else "gzip"


def make_producer(settings: CommonSettings, **overrides: object) -> AIOKafkaProducer:
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "acks": "all",
        "enable_idempotence": True,
        "compression_type": _compression(),
        "linger_ms": 5,
        "request_timeout_ms": 15_000,
    }
    options.update(overrides)
    return AIOKafkaProducer(**options)  # type: ignore[arg-type]


def make_consumer(
    settings: CommonSettings, *topics: str, group_id: str, **overrides: object
) -> AIOKafkaConsumer:
    options: dict[str, object] = {
        "bootstrap_servers": settings.kafka_bootstrap,
        "group_id": group_id,
        "enable_auto_commit": False,
        "auto_offset_reset": "earliest",
        "isolation_level": "read_committed",
        "max_poll_records": 500,
        "session_timeout_ms": 10_000,
        "heartbeat_interval_ms": 3_000,
    }
    options.update(overrides)
    return AIOKafkaConsumer(*topics, **options)  # type: ignore[arg-type]


async def ensure_topics(
    settings: CommonSettings,
    topics: list[str],
    *,
    partitions: int | None = None,
    configs: dict[str, str] | None = None,
    timeout_s: float = 30.0,
) -> list[str]:
    """Create the topics that are missing; return the ones created. Safe to run concurrently.

    Replication and min.insync.replicas come from the settings (RETARGET_TOPIC_REPLICATION,
    RETARGET_TOPIC_MIN_INSYNC): with 3 and 2, an acknowledged record is on two brokers, and
    losing one broker neither loses it nor stops the producers.
    """
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap, request_timeout_ms=15_000)
    await asyncio.wait_for(admin.start(), timeout_s)
    try:
        existing = set(await admin.list_topics())
        missing = [t for t in topics if t not in existing]
        if not missing:
            return []
        topic_configs = {"min.insync.replicas": str(settings.topic_min_insync), **(configs or {})}
        new = [
            NewTopic(
                t,
                topic_layout(t).partitions or partitions or settings.topic_partitions,
                settings.topic_replication,
                topic_configs={**topic_configs, **topic_layout(t).configs},
            )
            for t in missing
        ]
        try:
            await admin.create_topics(new, timeout_ms=int(timeout_s * 1000))
        except TopicAlreadyExistsError:
            pass  # another process created it between our list and create
        await _wait_for_metadata(admin, missing, timeout_s)
        log.info("created topics", extra={"topics": missing})
        return missing
    finally:
        await admin.close()


async def delete_topics_with_prefixes(
    bootstrap: str, prefixes: list[str] | set[str], *, timeout_s: float = 60.0
) -> list[str]:
    """Delete every topic whose name starts with one of `prefixes`; return their names.

    Tests and benchmarks make fresh topics per run (random prefixes) so they never see each
    other's records; without this a long-lived local broker piles up thousands of partitions
    and slows to a crawl (its metadata requests then time out).
    """
    if not prefixes:
        return []
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap, request_timeout_ms=30_000)
    await asyncio.wait_for(admin.start(), timeout_s)
    try:
        doomed = [t for t in await admin.list_topics() if t.startswith(tuple(prefixes))]
        for start in range(0, len(doomed), 100):  # a bounded request each
            await admin.delete_topics(doomed[start : start + 100], timeout_ms=int(timeout_s * 1000))
        # deletion completes in the background: wait until the broker no longer lists them
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while set(doomed) & set(await admin.list_topics()):
            if loop.time() > deadline:
                raise TimeoutError(f"topics still listed {timeout_s}s after their deletion")
            await asyncio.sleep(0.1)
        return doomed
    finally:
        await admin.close()


async def _wait_for_metadata(admin: AIOKafkaAdminClient, topics: list[str], timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while loop.time() < deadline:
        if set(topics) <= set(await admin.list_topics()):
            return
        await asyncio.sleep(0.1)
    raise TimeoutError(f"topics not visible after {timeout_s}s: {topics}")
