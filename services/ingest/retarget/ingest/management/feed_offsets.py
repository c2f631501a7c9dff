"""Where each of a workspace's current objects sits in the change feed: the offset of the
record carrying its newest version, read from the compacted topic (one partition, small:
one record per object once compacted). `GET …/config/live` compares these offsets with
the ones each service instance reports in `config_applied`."""

from __future__ import annotations

import asyncio
import logging

from aiokafka import AIOKafkaConsumer, TopicPartition

from retarget.config.records import config_topic, decode
from retarget.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

Placed = dict[tuple[str, str], tuple[int, int]]  # (kind, name) -> (version, offset)


async def feed_offsets(settings: IngestSettings, workspace_id: str) -> Placed:
    prefix = f"{workspace_id}/".encode()
    partition = TopicPartition(config_topic(settings.topic_prefix), 0)
    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        end = (await consumer.end_offsets([partition]))[partition]
        placed: Placed = {}
        async with asyncio.timeout(settings.publish_timeout_s * 4):
            while await consumer.position(partition) < end:
                for records in (await consumer.getmany(partition, timeout_ms=500)).values():
                    for record in records:
                        if record.key is not None and record.key.startswith(prefix):
                            _place(placed, record.key, record.value, record.offset)
        return placed
    finally:
        await consumer.stop()


def _place(placed: Placed, key: bytes, value: bytes | None, offset: int) -> None:
    try:
        change = decode(key, value or b"")
    except ValueError:
        log.warning("undecodable config record skipped", extra={"offset": offset})
        return
    seen = placed.get((change.kind, change.name))
    if seen is None or change.version > seen[0]:  # the first record of the newest version
        placed[(change.kind, change.name)] = (change.version, offset)
