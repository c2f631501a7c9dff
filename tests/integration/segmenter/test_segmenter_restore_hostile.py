"""The batched restore (restore.py) against changelogs a plain producer does not write: aborted
transactions (read_committed skips them), a commit marker at the tail (no record at faust's
highwater), and a crash between write batches."""

from __future__ import annotations

import uuid

import pytest
from aiokafka import AIOKafkaProducer
from faust.types import TP

from retarget.common.kafka import ensure_topics, make_producer
from retarget.common.settings import CommonSettings
from retarget.segmenter.recording import PartitionTable
from retarget.segmenter.restore import restore_partitions
from retarget.segmenter.testing import rocksdb_tables

pytestmark = pytest.mark.integration


async def produce(settings: CommonSettings, topic: str, partition: int, *records) -> int:
    producer = make_producer(settings)
    await producer.start()
    try:
        for key, value in records:
            meta = await producer.send_and_wait(topic, value, key=key, partition=partition)
        return int(meta.offset)
    finally:
        await producer.stop()


async def in_transaction(
    settings: CommonSettings, topic: str, partition: int, *records, commit: bool
) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=settings.kafka_bootstrap, transactional_id=f"t-{uuid.uuid4().hex}"
    )
    await producer.start()
    try:
        await producer.begin_transaction()
        for key, value in records:
            await producer.send_and_wait(topic, value, key=key, partition=partition)
        if commit:
            await producer.commit_transaction()
        else:
            await producer.abort_transaction()
    finally:
        await producer.stop()


async def highwater(settings: CommonSettings, topic: str, partition: int) -> int:
    """faust's highwater: the end offset - 1 (read_uncommitted, as faust's consumer reads)."""
    from aiokafka import AIOKafkaConsumer, TopicPartition

    consumer = AIOKafkaConsumer(bootstrap_servers=settings.kafka_bootstrap)
    await consumer.start()
    try:
        tp = TopicPartition(topic, partition)
        return int((await consumer.end_offsets([tp]))[tp]) - 1
    finally:
        await consumer.stop()


async def test_aborted_records_are_skipped_and_a_marker_at_the_tail_leaves_nothing_to_faust(
    stack, topic_prefix, tmp_path
):
    settings = CommonSettings(kafka_bootstrap=stack["RETARGET_KAFKA_BOOTSTRAP"], topic_partitions=4)
    topic = f"{topic_prefix}-profiles-changelog"
    await ensure_topics(settings, [topic])
    (table,) = rocksdb_tables(str(tmp_path), "profiles")
    store, tp = PartitionTable(table), TP(topic, 0)
    await produce(settings, topic, 0, (b"a", b"1"))
    await in_transaction(settings, topic, 0, (b"a", b"aborted"), (b"b", b"aborted"), commit=False)
    await in_transaction(settings, topic, 0, (b"c", b"committed"), commit=True)
    last = await highwater(settings, topic, 0)  # the commit marker
    offsets: dict[TP, int | None] = {tp: None}

    written = await restore_partitions(settings, {tp: table}, offsets, {tp: last}, 20)

    assert (store.get_in(0, b"a"), store.get_in(0, b"b"), store.get_in(0, b"c")) == (b"1", None, b"committed")
    assert written == 2
    # everything up to faust's highwater was read: faust's recovery must find nothing left
    # (else it waits for a record that never comes, 5 s and more, before detect_aborted_tx)
    assert offsets == {tp: last}
    assert table.data.persisted_offset(tp) == last
