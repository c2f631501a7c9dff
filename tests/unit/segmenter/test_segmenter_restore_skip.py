"""The batched restore contacts no broker when there is nothing to restore: every partition's
store already at faust's highwater (a worker restarting on its own disk), or an empty changelog."""

from __future__ import annotations

import asyncio

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
