"""A workspace's event history, read from the events topic — what training learns from.

The events topic is the one place every accepted event is (ingest answers 200 only once Kafka
has it), so it is read from its beginning to its end as it stood when reading started,
keeping the workspace's records (by key, then checked against the record's own workspace).
Its limit is the topic's retention: history older than `retention.ms` (the broker's default,
7 days on the local stack) is gone, and a longer horizon or more cut-offs need a longer
retention. No consumer group: nothing is committed, nothing to clean up.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import msgspec
from aiokafka import AIOKafkaConsumer, TopicPartition

from retarget.common.schemas import TrackedEvent
from retarget.common.settings import CommonSettings
from retarget.common.topics import Topics

log = logging.getLogger(__name__)
_decoder = msgspec.json.Decoder(TrackedEvent)


def keep_record(workspace_id: str, key: bytes | None, value: bytes) -> TrackedEvent | None:
    """The workspace's event in a record of the events topic, else None (another workspace's, or
    a record the segmenter dead-letters)."""
    if key is None or not key.startswith(f"{workspace_id}:".encode()):
        return None
    try:
        event = _decoder.decode(value)
    except (msgspec.DecodeError, msgspec.ValidationError):
        return None
    return event if event.workspace_id == workspace_id else None


async def read_history(
    settings: CommonSettings, workspace_id: str, *, on_progress: Callable[[int], None] = lambda n: None
) -> list[TrackedEvent]:
    topic = Topics(settings.topic_prefix).events
    consumer = AIOKafkaConsumer(
        bootstrap_servers=settings.kafka_bootstrap,
        group_id=None,
        enable_auto_commit=False,
        isolation_level="read_committed",
        max_poll_records=5000,
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in sorted(await _partitions(consumer, topic))]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        left = {tp for tp in partitions if ends[tp] > await consumer.position(tp)}
        events: list[TrackedEvent] = []
        while left:
            batches = await consumer.getmany(*left, timeout_ms=1000, max_records=5000)
            for tp, records in batches.items():
                for record in records:
                    if record.offset < ends[tp] and (
                        event := keep_record(workspace_id, record.key, record.value)
                    ):
                        events.append(event)
                on_progress(len(records))
            left = {tp for tp in left if await consumer.position(tp) < ends[tp]}
        return events
    finally:
        await consumer.stop()


async def _partitions(consumer: AIOKafkaConsumer, topic: str) -> set[int]:
    # a consumer keeps metadata only of the topics it reads: ask the cluster (as config/follower.py)
    found = (await consumer._client.fetch_all_metadata()).partitions_for_topic(topic)
    if not found:
        raise RuntimeError(f"topic {topic} not found: no events to train from")
    return set(found)
