"""The batched restore contacts no broker when there is nothing to restore: every partition's
store already at faust's highwater (a worker restarting on its own disk), or an empty changelog."""

from __future__ import annotations

import asyncio
import contextlib

from faust.types import TP

from retarget.common.settings import CommonSettings
from retarget.segmenter.restore import restore_partitions
from retarget.segmenter.testing import rocksdb_tables


async def test_stores_at_the_highwater_are_left_alone_without_a_consumer(tmp_path):
    settings = CommonSettings(kafka_bootstrap="127.0.0.1:1", topic_partitions=4)  # nothing listens
    (table,) = rocksdb_tables(str(tmp_path), "profiles")
    at_highwater, empty = TP("t-profiles-changelog", 0), TP("t-profiles-changelog", 1)
    offsets: dict[TP, int | None] = {at_highwater: 7, empty: None}
    restored = restore_partitions(
        settings, {at_highwater: table, empty: table}, offsets, {at_highwater: 7, empty: -1}, 30
    )
    assert await asyncio.wait_for(restored, 5) == 0
    assert offsets == {at_highwater: 7, empty: None}


async def test_a_restore_cancelled_while_its_consumer_starts_stops_the_consumer(tmp_path, monkeypatch):
    """Faust cancels the step when another rebalance starts (RebalanceAgain): cancelled while its
    consumer was still connecting, the restore left it running — its client, connections and
    metadata task — once per rebalance of a storm."""
    from retarget.segmenter import restore

    started, stopped = asyncio.Event(), []

    class Consumer:
        async def start(self) -> None:
            started.set()
            await asyncio.sleep(3600)  # a broker that accepts and never answers

        async def stop(self) -> None:
            stopped.append(True)

    monkeypatch.setattr(restore, "make_consumer", lambda *args, **kwargs: Consumer())
    settings = CommonSettings(kafka_bootstrap="127.0.0.1:1", topic_partitions=4)
    (table,) = rocksdb_tables(str(tmp_path), "profiles")
    tp = TP("t-profiles-changelog", 0)
    task = asyncio.ensure_future(restore_partitions(settings, {tp: table}, {tp: None}, {tp: 5}, 30))
    await started.wait()
    task.cancel()
    with contextlib.suppress(asyncio.CancelledError):
        await task
    assert stopped == [True]
