"""The batched restore (restore.py) against changelogs a plain producer does not write: aborted
transactions (read_committed skips them), a commit marker at the tail (no record at faust's
highwater), and a crash between write batches."""

from __future__ import annotations

import asyncio
import uuid
from types import SimpleNamespace

import pytest
from aiokafka import AIOKafkaProducer
from faust.types import TP

from retarget.common.kafka import ensure_topics
from retarget.common.settings import CommonSettings
from retarget.segmenter.recording import PartitionTable
from retarget.segmenter.restore import restore_partitions
from retarget.segmenter.testing import rocksdb_tables

from .test_segmenter_restore import produce

pytestmark = pytest.mark.integration


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


_CHILD = """
import asyncio, sys
from faust.types import TP
from retarget.common.settings import CommonSettings
from retarget.segmenter import restore
from retarget.segmenter.testing import rocksdb_tables

bootstrap, topic, datadir, last = sys.argv[1], sys.argv[2], sys.argv[3], int(sys.argv[4])
restore.POLL_RECORDS = 4  # many write batches
(table,) = rocksdb_tables(datadir, "profiles")
tp = TP(topic, 0)
settings = CommonSettings(kafka_bootstrap=bootstrap, topic_partitions=4)
offsets = {tp: table.data.persisted_offset(tp)}
asyncio.run(restore.restore_partitions(settings, {tp: table}, offsets, {tp: last}, 30))
"""


def visible(table, partition: int) -> dict[bytes, bytes]:
    from retarget.segmenter import faust_internals

    db = faust_internals.partition_db(table, partition)
    return dict(faust_internals.visible_items(table, db))


async def test_a_restore_killed_between_write_batches_ends_as_a_clean_restore(stack, topic_prefix, tmp_path):
    import subprocess
    import sys

    settings = CommonSettings(kafka_bootstrap=stack["RETARGET_KAFKA_BOOTSTRAP"], topic_partitions=4)
    topic = f"{topic_prefix}-profiles-changelog"
    await ensure_topics(settings, [topic])
    # updates, deletes and re-creations of a few keys: a record applied twice or skipped shows
    records = []
    for i in range(40):
        key = b"k%d" % (i % 5)
        records.append((key, None if i % 7 == 3 else b"v%d" % i))
    last = await produce(settings, topic, 0, *records)
    killed = tmp_path / "killed"

    def child(crash_at: str | None) -> int:
        env = {**__import__("os").environ}
        env.pop("RETARGET_CRASH_AT", None)
        if crash_at:
            env["RETARGET_CRASH_AT"] = crash_at
        args = [sys.executable, "-c", _CHILD, settings.kafka_bootstrap, topic, str(killed), str(last)]
        return subprocess.run(args, env=env, timeout=60).returncode

    assert child("segmenter.restore.after_batch@3") == -9  # SIGKILLed after 3 write batches
    (table,) = rocksdb_tables(str(killed), "profiles")
    tp = TP(topic, 0)
    part_way = table.data.persisted_offset(tp)
    assert part_way is not None and 0 < part_way < last
    table.data._dbs.clear()  # let the child open the databases (one process at a time, as faust)
    del table
    assert child(None) == 0

    (table,) = rocksdb_tables(str(killed), "profiles")
    (clean,) = rocksdb_tables(str(tmp_path / "clean"), "profiles")
    offsets: dict[TP, int | None] = {tp: None}
    await restore_partitions(settings, {tp: clean}, offsets, {tp: last}, 30)
    assert table.data.persisted_offset(tp) == clean.data.persisted_offset(tp) == last
    assert visible(table, 0) == visible(clean, 0)
    expected: dict[bytes, bytes] = {}
    for key, value in records:
        if value is None:
            expected.pop(key, None)
        else:
            expected[key] = value
    assert visible(clean, 0) == expected


async def test_a_budget_spent_mid_partition_reports_to_faust_exactly_what_the_store_holds(
    stack, topic_prefix, tmp_path, monkeypatch
):
    from retarget.segmenter import restore

    settings = CommonSettings(kafka_bootstrap=stack["RETARGET_KAFKA_BOOTSTRAP"], topic_partitions=4)
    topic = f"{topic_prefix}-profiles-changelog"
    await ensure_topics(settings, [topic])
    records = [(b"k%d" % (i % 3), b"v%d" % i) for i in range(30)]
    last = await produce(settings, topic, 0, *records)
    (table,) = rocksdb_tables(str(tmp_path), "profiles")
    tp = TP(topic, 0)
    ticks = iter(range(1000))
    # a second passes at each look at the clock (its own clock only: asyncio's is untouched)
    monkeypatch.setattr(restore, "time", SimpleNamespace(monotonic=lambda: float(next(ticks))))
    monkeypatch.setattr(restore, "POLL_RECORDS", 4)
    offsets: dict[TP, int | None] = {tp: None}

    written = await restore.restore_partitions(settings, {tp: table}, offsets, {tp: last}, 3.5)

    reached = offsets[tp]
    assert written and reached is not None and reached < last  # the budget ran out part-way
    assert table.data.persisted_offset(tp) == reached  # faust starts where the store is: none skipped
    expected = {}
    for key, value in records[: reached + 1]:
        expected[key] = value
    assert visible(table, 0) == expected


async def test_a_kill_after_a_poll_that_read_past_the_highwater_never_stores_an_offset_past_it(
    stack, topic_prefix, tmp_path
):
    """Records past faust's highwater (the partition's new writes) are in the same poll: the
    offset written with the batch is the highwater's, or the next recovery skips them."""
    import os
    import subprocess
    import sys

    settings = CommonSettings(kafka_bootstrap=stack["RETARGET_KAFKA_BOOTSTRAP"], topic_partitions=4)
    topic = f"{topic_prefix}-profiles-changelog"
    await ensure_topics(settings, [topic])
    highwater = await produce(settings, topic, 0, (b"a", b"1"), (b"b", b"1"))
    await produce(settings, topic, 0, (b"c", b"later"), (b"d", b"later"))
    child = _CHILD.replace("restore.POLL_RECORDS = 4", "restore.POLL_RECORDS = 100")
    env = {**os.environ, "RETARGET_CRASH_AT": "segmenter.restore.after_batch@1"}
    args = [sys.executable, "-c", child, settings.kafka_bootstrap, topic, str(tmp_path), str(highwater)]
    assert (await asyncio.to_thread(subprocess.run, args, env=env, timeout=60)).returncode == -9
    (table,) = rocksdb_tables(str(tmp_path), "profiles")
    assert table.data.persisted_offset(TP(topic, 0)) == highwater
    assert visible(table, 0) == {b"a": b"1", b"b": b"1"}
