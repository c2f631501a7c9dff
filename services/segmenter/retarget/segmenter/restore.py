"""Table partitions restored from their changelogs in batches, ahead of faust's own recovery.

Why: faust's recovery hands every changelog record through its consumer's fetcher and an
asyncio queue, a few tasks each; a full restore ran at ~1.6k records/s where a bare consumer
reads ~190k/s (bench/RESULTS.md), and a partition that moves to a worker without its state
fires nothing meanwhile. RocksDB writes are ~1% of that time: the per-record hand-off is the
cost. So once faust has measured each active changelog partition's highwater, and before it
reads where to start, this reads each one from the offset its store holds up to that highwater
with aiokafka `getmany`, and writes each poll of a partition as ONE RocksDB write batch holding
the data and the changelog offset reached (recording.py's guarantee: the local store is never
ahead of its stored offset, so a crash or a rebalance mid-restore loses nothing). Faust's
recovery then starts from the offset reached: nothing left, or what the time budget left over.

The budget: faust waits for this step at most `broker_request_timeout` and stops its recovery
when that passes, so the restore returns well before, and faust reads the rest its own way.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Mapping, MutableMapping
from typing import Any

from aiokafka.structs import TopicPartition
from faust.types import TP

from retarget.common.faults import crash_point
from retarget.common.kafka import make_consumer
from retarget.common.settings import CommonSettings
from retarget.segmenter.recording import PartitionTable

log = logging.getLogger(__name__)

#: the records one poll may hand over: one write batch per partition per poll
POLL_RECORDS = 20_000


async def restore_partitions(
    settings: CommonSettings,
    tables: Mapping[TP, Any],
    offsets: MutableMapping[TP, Any],
    highwaters: Mapping[TP, int],
    budget_s: float,
) -> int:
    """Bring each partition in `tables` (changelog partition -> faust table) from `offsets` (the
    last offset its store holds, None or -1 for none) up to `highwaters` (the last offset to
    read, faust's), then set `offsets` to what was reached. Returns the records written."""
    starts = {tp: _next(offsets.get(tp)) for tp in tables}
    todo = {tp: start for tp, start in starts.items() if start <= highwaters.get(tp, -1)}
    if not todo or budget_s <= 0:
        return 0
    # no group: the partitions are faust's, and nothing is committed (the stores keep the offsets)
    no_group: Any = None
    consumer = make_consumer(
        settings, group_id=no_group, max_poll_records=POLL_RECORDS, fetch_max_bytes=64 * 2**20
    )
    written, deadline = 0, time.monotonic() + budget_s
    try:
        await consumer.start()  # inside: a rebalance may cancel the step while it connects
        consumer.assign([TopicPartition(tp.topic, tp.partition) for tp in todo])
        for tp, start in todo.items():
            consumer.seek(TopicPartition(tp.topic, tp.partition), start)  # compacted below it: earliest
        while todo and time.monotonic() < deadline:
            polled = await consumer.getmany(timeout_ms=500, max_records=POLL_RECORDS)
            for ktp, records in polled.items():
                tp = TP(ktp.topic, ktp.partition)
                last = highwaters[tp]
                batch = [(r.key, r.value) for r in records if r.offset <= last]
                if batch:
                    reached = min(records[-1].offset, last)
                    PartitionTable(tables[tp]).write_batch(tp.partition, batch, reached)
                    offsets[tp] = reached
                    written += len(batch)
                    crash_point("segmenter.restore.after_batch")
            for tp in list(todo):
                if await consumer.position(TopicPartition(tp.topic, tp.partition)) > highwaters[tp]:
                    # every committed record up to the highwater was handed over (read_committed)
                    # and written above. A transactional changelog (fencing.py) ends in a commit
                    # marker, no record: stored as the last record's, the offset left faust's
                    # recovery waiting for one (two quiet 5 s polls), at every restart after too
                    reached = offsets.get(tp)
                    if reached is None or reached < highwaters[tp]:
                        PartitionTable(tables[tp]).write_batch(tp.partition, [], highwaters[tp])
                        offsets[tp] = highwaters[tp]
                    del todo[tp]
    finally:
        await consumer.stop()
    if todo:
        log.warning("restore budget spent; faust's recovery reads the rest", extra={"partitions": len(todo)})
    return written


def _next(offset: int | None) -> int:
    return offset + 1 if offset is not None and offset >= 0 else 0
