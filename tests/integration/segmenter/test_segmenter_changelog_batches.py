"""A changelog partition's records as closed producer batches (changelog_batches.py), on the real
broker through a producer made as the worker makes them (fencing.py's are transactional): every record arrives once and in order, tombstones
too, however many batches they fill, and the offset the recorder hands faust's recovery is the
last record's."""

from __future__ import annotations

import asyncio
import time

from aiokafka import AIOKafkaConsumer
from aiokafka.structs import TopicPartition

from retarget.common.kafka import ensure_topics, make_producer
from retarget.common.settings import CommonSettings
from retarget.segmenter.changelog_batches import newest_offset, send_in_batches


async def _read(bootstrap: str, tp: TopicPartition, n: int) -> list[tuple[int, bytes, bytes | None]]:
    consumer = AIOKafkaConsumer(bootstrap_servers=bootstrap, enable_auto_commit=False)
    await consumer.start()
    try:
        consumer.assign([tp])
        await consumer.seek_to_beginning(tp)
        got: list[tuple[int, bytes, bytes | None]] = []
        deadline = time.monotonic() + 60
        while len(got) < n and time.monotonic() < deadline:
            polled = await consumer.getmany(tp, timeout_ms=1000)
            got += [(r.offset, r.key, r.value) for r in polled.get(tp, [])]
        return got
    finally:
        await consumer.stop()


async def test_records_over_several_full_batches_all_arrive_in_order_with_the_last_ones_offset(
    stack, topic_prefix
):
    bootstrap = stack["RETARGET_KAFKA_BOOTSTRAP"]
    settings = CommonSettings(kafka_bootstrap=bootstrap, topic_partitions=2)
    topic = f"{topic_prefix}.segmenter-profiles-changelog"
    await ensure_topics(settings, [topic])
    producer = make_producer(settings, max_batch_size=16 * 1024)  # the worker's producer, small batches
    await producer.start()
    # ~48 KiB of records (every tenth a tombstone): three batches or more
    records = [(b"k%03d" % i, (b"v%03d" % i) * 100 if i % 10 else None) for i in range(120)]
    try:
        await send_in_batches(producer, topic, 1, [(b"before", b"x")])  # the partition's offset is not 0
        sent = await send_in_batches(producer, topic, 1, records)
        acknowledged = await asyncio.gather(*(ack for ack, _ in sent))
    finally:
        await producer.stop()
    assert len(sent) >= 3 and sum(count for _, count in sent) == len(records)
    got = await _read(bootstrap, TopicPartition(topic, 1), len(records) + 1)
    assert [(key, value) for _, key, value in got[1:]] == records
    assert newest_offset(acknowledged[-1], sent[-1][1]) == got[-1][0]
