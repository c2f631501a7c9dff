"""Read a whole topic, up to its end offsets as they are now: what tests check afterwards.

Crash and chaos tests assert on what Kafka holds once the dust settles (every accepted
event, every trigger exactly once); this reads it without a consumer group, so nothing is
committed and any number of tests can read the same topic.
"""

from __future__ import annotations

import asyncio

from aiokafka import AIOKafkaConsumer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.structs import ConsumerRecord


async def read_to_end(bootstrap: str, topic: str, *, timeout_s: float = 60.0) -> list[ConsumerRecord]:
    """Every committed record of `topic` (all partitions), in partition order."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        async with asyncio.timeout(timeout_s):
            numbers = await _partitions(bootstrap, topic)
            partitions = [TopicPartition(topic, p) for p in sorted(numbers)]
            consumer.assign(partitions)
            await consumer.seek_to_beginning(*partitions)
            ends = await consumer.end_offsets(partitions)
            found: list[ConsumerRecord] = []
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found.extend(records)
            return found
    finally:
        await consumer.stop()


async def _partitions(bootstrap: str, topic: str) -> set[int]:
    """The topic's partitions (asked until listed: right after a broker's loss metadata lags)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        while True:
            described = await admin.describe_topics([topic])
            partitions = {p["partition"] for d in described if d["topic"] == topic for p in d["partitions"]}
            if partitions:
                return partitions
            await asyncio.sleep(0.2)
    finally:
        await admin.close()
