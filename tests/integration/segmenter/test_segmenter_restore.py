"""A table partition restored from its changelog in batches (restore.py), on the real broker and
faust's real RocksDB store: the data and the offset reached land together, a store that holds
part of the changelog reads only the rest, and nothing past faust's highwater is written."""

from __future__ import annotations

import pytest
from aiokafka.structs import TopicPartition
from faust.types import TP

from retarget.common.kafka import ensure_topics, make_consumer, make_producer
from retarget.common.settings import CommonSettings
from retarget.segmenter.recording import PartitionTable
from retarget.segmenter.restore import restore_partitions
from retarget.segmenter.testing import rocksdb_tables

pytestmark = pytest.mark.integration


async def produce(
    settings: CommonSettings, topic: str, partition: int, *records: tuple[bytes, bytes | None]
) -> int:
    """The records on one partition; returns the last one's offset."""
    producer = make_producer(settings)
    await producer.start()
    try:
        for key, value in records:
            meta = await producer.send_and_wait(topic, value, key=key, partition=partition)
        return int(meta.offset)
    finally:
        await producer.stop()


async def test_changelog_partitions_are_restored_in_batches_with_the_offset_reached(
    stack, topic_prefix, tmp_path
):
    settings = CommonSettings(kafka_bootstrap=stack["RETARGET_KAFKA_BOOTSTRAP"], topic_partitions=4)
    topic = f"{topic_prefix}-profiles-changelog"
    await ensure_topics(settings, [topic])
    (table,) = rocksdb_tables(str(tmp_path), "profiles")
    store, fresh, partly = PartitionTable(table), TP(topic, 1), TP(topic, 2)
    # partition 1: a store with nothing yet; a key updated, one deleted
    last1 = await produce(
        settings, topic, 1, (b"a", b"1"), (b"b", b"1"), (b"a", b"2"), (b"b", None), (b"c", b"1")
    )
    # partition 2: the store already holds offsets 0..1 (its own value for x shows it is not read again)
    await produce(settings, topic, 2, (b"x", b"changelog"), (b"y", b"1"))
    store.write_batch(2, [(b"x", b"stored"), (b"y", b"1")], 1)
    last2 = await produce(settings, topic, 2, (b"z", b"1"))
    highwaters = {fresh: last1, partly: last2}
    await produce(settings, topic, 2, (b"later", b"1"))  # past the highwater faust measured: its own
    offsets: dict[TP, int | None] = {fresh: None, partly: 1}

    written = await restore_partitions(settings, {fresh: table, partly: table}, offsets, highwaters, 60)

    assert written == 5 + 1
    assert offsets == {fresh: last1, partly: last2}  # faust's recovery starts there: nothing left
    assert (store.get_in(1, b"a"), store.get_in(1, b"b"), store.get_in(1, b"c")) == (b"2", None, b"1")
    assert (store.get_in(2, b"x"), store.get_in(2, b"z"), store.get_in(2, b"later")) == (
        b"stored",
        b"1",
        None,
    )
    assert table.data.persisted_offset(fresh) == last1  # written with the data
    assert table.data.persisted_offset(partly) == last2


async def test_a_spent_budget_leaves_the_rest_to_faust(stack, topic_prefix, tmp_path):
    settings = CommonSettings(kafka_bootstrap=stack["RETARGET_KAFKA_BOOTSTRAP"], topic_partitions=4)
    topic = f"{topic_prefix}-profiles-changelog"
    await ensure_topics(settings, [topic])
    (table,) = rocksdb_tables(str(tmp_path), "profiles")
    tp = TP(topic, 0)
    last = await produce(settings, topic, 0, (b"a", b"1"))
    offsets: dict[TP, int | None] = {tp: None}
    assert await restore_partitions(settings, {tp: table}, offsets, {tp: last}, 0) == 0
    assert offsets == {tp: None} and table.data.persisted_offset(tp) is None


async def test_a_transactional_changelog_is_restored_to_its_commit_marker_without_aborted_records(
    stack, topic_prefix, tmp_path
):
    """The changelogs are written in transactions (fencing.py): a commit marker ends each one, and
    a fenced owner's records are aborted. Restored, the store holds the committed records only,
    and the offset stored with them is the marker's (faust's highwater, read_committed): before,
    it was the last record's, so faust's recovery went on to wait out two quiet 5 s polls for the
    marker, and every later restart did again (the store was current, its offset was not)."""
    settings = CommonSettings(kafka_bootstrap=stack["RETARGET_KAFKA_BOOTSTRAP"], topic_partitions=4)
    topic = f"{topic_prefix}-profiles-changelog"
    await ensure_topics(settings, [topic])
    (table,) = rocksdb_tables(str(tmp_path), "profiles")
    store, tp = PartitionTable(table), TP(topic, 3)

    async def transaction(tid: str, *records: tuple[bytes, bytes | None], commit: bool) -> None:
        producer = make_producer(settings, transactional_id=tid)
        await producer.start()
        try:
            await producer.begin_transaction()
            for key, value in records:
                await producer.send_and_wait(topic, value, key=key, partition=3)
            await (producer.commit_transaction() if commit else producer.abort_transaction())
        finally:
            await producer.stop()

    await transaction(f"{topic_prefix}-t", (b"a", b"1"), (b"b", b"1"), commit=True)
    await transaction(f"{topic_prefix}-t", (b"a", b"zombie"), (b"c", b"zombie"), commit=False)
    await transaction(f"{topic_prefix}-t", (b"b", b"2"), commit=True)
    reader = make_consumer(settings, group_id=None)  # type: ignore[arg-type]
    await reader.start()
    try:
        (end,) = (await reader.end_offsets([TopicPartition(topic, 3)])).values()  # read_committed
    finally:
        await reader.stop()
    highwater = end - 1  # faust's: the last commit marker
    offsets: dict[TP, int | None] = {tp: None}

    assert await restore_partitions(settings, {tp: table}, offsets, {tp: highwater}, 60) == 3
    assert (store.get_in(3, b"a"), store.get_in(3, b"b"), store.get_in(3, b"c")) == (b"1", b"2", None)
    assert offsets == {tp: highwater}  # faust's recovery: nothing left, no marker to wait for
    assert table.data.persisted_offset(tp) == highwater  # the next restart reads nothing either
