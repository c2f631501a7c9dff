"""How a batch is recorded, so that local state is never ahead of what recovery restores.

Kafka Streams' checkpoint idea, on faust's tables:

1. the batch's sends acknowledged (triggers, merges, forwards, dead letters);
2. its changelog records committed: per events partition, one Kafka transaction holding the
   `due` table's records, then `profiles`', then the input position (`positions` table: events
   partition -> next offset to read), after the data it covers (fencing.py: the transaction
   is what fences a stalled former owner of the partition);
3. then, per table partition, ONE RocksDB write batch holding the data and the changelog
   offset faust's recovery starts after (the positions table last).

A crash before 3 leaves the local store behind the changelog, never ahead: faust's recovery
reads the changelog (read_committed) from the stored offset and catches it up. A crash before
a partition's transaction committed replays that partition's part of the batch from the
previous position: the sends repeat with the same ids (deduplicated downstream); the
partition's data and position records were aborted together. Partitions whose transactions
committed are recorded (a profile holds the message ids that make a replayed event a
duplicate).

A failure while the sends settle leaves nothing recorded (`SendsUnacknowledged`: the caller
may retry). A failure once changelog records were sent (a broker error, or this worker was
fenced: another owns the partition now) may leave the changelog partly ahead of the local
store: nothing but a restart (faust's recovery) puts them back in step, so it is raised as
is and the caller must exit (batch_agent.record_or_die).
"""

from __future__ import annotations

import asyncio
from collections import defaultdict
from collections.abc import Callable, Sequence
from typing import Any

import rocksdict

from retarget.common.faults import crash_point
from retarget.segmenter import faust_internals
from retarget.segmenter.batching import BatchOutputs, SendsUnacknowledged, WriteBehind
from retarget.segmenter.fencing import FencedChangelog, PartitionWrites, Writes
from retarget.segmenter.metrics import BatchCounts


class PartitionTable:
    """A faust table's store, read and written per partition (`partition`: the one being handled)."""

    def __init__(self, table: Any) -> None:
        self.table, self.partition = table, 0

    @property
    def changelog(self) -> str:
        name: str = self.table.changelog_topic_name
        return name

    def _db(self, partition: int) -> Any:
        # looked up each time, not kept: faust closes and opens them as partitions move
        return faust_internals.partition_db(self.table, partition)

    def current_partition(self) -> int:
        return self.partition

    def get(self, key: bytes) -> bytes | None:
        return self.get_in(self.partition, key)

    def get_in(self, partition: int, key: bytes) -> bytes | None:
        value: bytes | None = self._db(partition).get(key)  # RocksDB, or the memory store's dict
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:  # writes go through `write_batch`
        raise TypeError("PartitionTable is written through write_batch")

    def __delitem__(self, key: bytes) -> None:
        raise TypeError("PartitionTable is written through write_batch")

    def write_batch(self, partition: int, writes: Writes, changelog_offset: int) -> None:
        """The writes and the changelog offset they reach, atomically (one RocksDB write batch)."""
        db = self._db(partition)
        if isinstance(db, dict):  # the memory store (tests): no offsets, nothing to recover
            for key, value in writes:
                if value is None:
                    db.pop(key, None)
                else:
                    db[key] = value
            return
        batch = rocksdict.WriteBatch(raw_mode=True)
        for key, value in writes:
            if value is None:
                batch.delete(key)
            else:
                batch.put(key, value)
        batch.put(faust_internals.OFFSET_KEY, faust_internals.encode_offset(changelog_offset))
        db.write(batch)


class LazyProducer:
    """The worker's one producer for its records (the changelogs: fencing.py), started on first
    use (aiokafka wants the running loop). One producer: a merge record and the event forwarded
    after it, or two batches' records of one key, reach a partition in the order sent."""

    def __init__(self, make: Callable[[], Any]) -> None:
        self._make, self._producer, self._lock = make, None, asyncio.Lock()

    async def _started(self) -> Any:
        if self._producer is None:
            async with self._lock:
                if self._producer is None:
                    producer = self._make()
                    await producer.start()
                    self._producer = producer
        return self._producer

    async def send(self, topic: str, value: bytes | None, key: bytes, partition: int | None = None) -> Any:
        return await (await self._started()).send(topic, value, key=key, partition=partition)


def position_key(partition: int) -> bytes:
    return b"events:%d" % partition


def decode_position(value: bytes | None) -> int | None:
    return int(value) if value is not None else None


class Recorder:
    """Records a batch's overlays in the order above; `tables` in the order their changelog
    records must be acknowledged (due, then profiles)."""

    def __init__(
        self,
        tables: Sequence[tuple[WriteBehind, PartitionTable]],
        outputs: BatchOutputs,
        changelog: FencedChangelog,
        positions: PartitionTable | None = None,
        counts: BatchCounts | None = None,
    ) -> None:
        self.tables, self.outputs, self.positions = list(tables), outputs, positions
        self.changelog = changelog  # the transactions that record a batch (fencing.py)
        self.counts = counts or BatchCounts()  # the processor's: applied once the batch is recorded

    def discard(self) -> None:
        """A batch that failed before recording: forget its pending writes and sends."""
        for overlay, _ in self.tables:
            overlay.discard()
        self.outputs.discard()
        self.counts.discard()

    async def record(self, positions: dict[int, int] | None = None) -> None:
        """`positions`: events partition -> the next offset to read, for a batch of events."""
        try:
            await self.outputs.settle()  # every send of the batch, forwards and dead letters too
        except BaseException as exc:
            self.discard()
            raise SendsUnacknowledged(str(exc)) from exc
        crash_point("segmenter.after_sends")
        writes: PartitionWrites = defaultdict(list)
        for overlay, table in self.tables:
            for partition, partition_writes in by_partition(overlay).items():
                writes[partition].append((table, partition_writes))
        if positions and self.positions is not None:
            for partition, at in positions.items():  # after the data it covers
                writes[partition].append((self.positions, [(position_key(partition), b"%d" % at)]))
        staged = await self.changelog.write(writes) if writes else []
        crash_point("segmenter.after_changelog")
        for table, partition, table_writes, offset in staged:
            table.write_batch(partition, table_writes, offset)
        crash_point("segmenter.after_state_write")
        self.counts.apply()
        crash_point("segmenter.after_commit")


def by_partition(overlay: WriteBehind) -> dict[int, Writes]:
    """An overlay's pending writes (their context is the partition), now drained."""
    out: dict[int, Writes] = defaultdict(list)
    for key, value, partition in overlay.drain():
        out[partition].append((key, value))
    return out
