"""The events topic's hot path: batches from aiokafka straight into the faust tables' RocksDB.

Why not a faust agent: faust hands every record through its conductor, a queue and the
stream, a few event-loop turns each, and writes every table key through its own changelog
producer; a faust agent that does nothing reads ~14k records/s on our machines, and the
worker ran ~5k events/s against a 20k goal (bench/RESULTS.md). This loop reads the events
topic with aiokafka `getmany`, runs the same rules (`ProfileProcessor`) over a whole poll,
and writes each touched key once into the same tables faust keeps: a RocksDB write batch
per partition of the table's own store, and the table's own changelog topic, so faust's
recovery, standby replicas and rebalancing keep working on exactly the data it always had.

Faust still decides who owns what: the loop reads the events partitions whose numbers
faust assigned to this worker (the co-partitioned `profile-events` topic), stops while faust
rebalances or recovers, and finishes the batch in hand before faust gives a partition away
(`pause`). One batch at a time with faust's agent and the timer (the shared lock), and each
batch's changelog records are delivered before the next batch starts — the agent's go out
through faust's producer, the loop's through its own — so a key's records land in the
changelog in the order they were written.

A batch is recorded in this order: the acknowledged sends (triggers, merges), then the
table writes (RocksDB, then the changelog, acknowledged), then every other send of the batch
(forwarded events, dead letters) delivered, then the events' offsets, which this loop
commits under its own group (`<app id>-events`). A crash anywhere repeats the
batch from the committed offsets; the worker then rebuilds its local state from the
changelog (an unclean stop wipes it), so nothing is lost and nothing is recorded twice.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections import defaultdict
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from typing import Any

import rocksdict
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition
from faust.types import TP

from retarget.common.metrics import labelled
from retarget.segmenter import metrics
from retarget.segmenter.batch_agent import record_or_die
from retarget.segmenter.batching import BatchOutputs, WriteBehind
from retarget.segmenter.dead_letters import dead_letter_on_failure
from retarget.segmenter.processor import ProfileProcessor

log = logging.getLogger(__name__)


class PartitionTable:
    """A faust table's store, read per partition (`partition` is the one being handled)."""

    def __init__(self, table: Any) -> None:
        self.table, self.partition = table, 0
        self._dbs: dict[int, Any] = {}  # faust's open database per partition, looked up once

    def forget_databases(self) -> None:
        """Partitions moved: faust may have closed or opened databases."""
        self._dbs.clear()

    def _db(self, partition: int) -> Any:
        db = self._dbs.get(partition)
        if db is None:
            store = self.table.data
            db = self._dbs[partition] = (
                store._db_for_partition(partition) if hasattr(store, "_db_for_partition") else store.data
            )
        return db

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

    def write_batch(self, partition: int, writes: list[tuple[bytes, bytes | None]]) -> None:
        db = self._db(partition)
        if isinstance(db, dict):  # the memory store (tests)
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
        db.write(batch)

    def remember_changelog_offset(self, partition: int, offset: int) -> None:
        """So faust's recovery starts after what this loop wrote (it would replay it harmlessly)."""
        store = self.table.data
        if hasattr(store, "set_persisted_offset"):
            store.set_persisted_offset(TP(self.table.changelog_topic_name, partition), offset)


@dataclass
class LoopParts:
    """What the loop shares with the rest of the worker."""

    app: Any
    processor: ProfileProcessor
    tables: list[tuple[WriteBehind, PartitionTable]]  # the processor's overlays over each table
    outputs: BatchOutputs  # the processor's `send`
    producer: AIOKafkaProducer
    lock: asyncio.Lock
    dead_letter: Callable[[str, int, int, bytes | None, bytes | None, str], Awaitable[None]]


class EventsLoop:
    def __init__(
        self,
        parts: LoopParts,
        *,
        bootstrap: str,
        events_topic: str,
        owner_topic: str,
        group_id: str,
        batch_size: int,
        within_s: float,
        legacy_group: str | None = None,
    ) -> None:
        self.parts = parts
        self.bootstrap, self.legacy_group = bootstrap, legacy_group
        self.legacy_offsets: dict[TopicPartition, int] = {}
        self.events_topic, self.owner_topic = events_topic, owner_topic
        self.batch_size, self.within_ms = batch_size, max(1, int(within_s * 1000))
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=group_id,  # for its offsets only: faust assigns the partitions
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=batch_size,
            fetch_max_bytes=16 * 2**20,
        )
        self.assigned: frozenset[int] = frozenset()
        self.paused = True  # until faust has assigned and recovered partitions
        self.stopping = False

    # -- ownership ------------------------------------------------------------------------

    def wanted(self) -> frozenset[int]:
        """The partitions faust gave this worker (by the co-partitioned owner topic)."""
        app = self.parts.app
        if app.rebalancing or app.in_recovery:
            return frozenset()
        return frozenset(
            tp.partition for tp in app.assignor.assigned_actives() if tp.topic == self.owner_topic
        )

    @property
    def running(self) -> bool:
        return not self.paused

    async def pause(self) -> None:
        """Faust is taking partitions away: finish the batch in hand (it commits), then wait."""
        async with self.parts.lock:
            self.paused = True
            for _, table in self.parts.tables:
                table.forget_databases()

    async def stop(self) -> None:
        """The worker is stopping: finish the batch in hand, then read nothing more."""
        self.stopping = True
        await self.pause()

    async def _follow_assignment(self) -> bool:
        wanted = self.wanted() if not self.stopping else frozenset()
        if not wanted:
            self.paused = True
            return False
        if wanted != self.assigned or self.paused:
            partitions = [TopicPartition(self.events_topic, p) for p in sorted(wanted)]
            self.consumer.assign(partitions)
            for tp in partitions:  # positions: this loop's committed offsets, else the legacy group's
                if tp in self.legacy_offsets and await self.consumer.committed(tp) is None:
                    self.consumer.seek(tp, self.legacy_offsets[tp])
            for _, table in self.parts.tables:
                table.forget_databases()
            self.assigned, self.paused = wanted, False
            log.info("events partitions assigned", extra={"partitions": sorted(wanted)})
        return True

    async def _load_legacy_offsets(self, bootstrap: str) -> None:
        """Where the faust agent had read the events topic to, in versions where it did: a worker
        upgraded from one carries on from there instead of replaying the whole topic."""
        if not self.legacy_group:
            return
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        try:
            await admin.start()
            found = await admin.list_consumer_group_offsets(self.legacy_group)
        except KafkaError as exc:
            log.warning("legacy offsets not read", extra={"error": repr(exc)})
            return
        finally:
            await admin.close()
        self.legacy_offsets = {
            tp: meta.offset
            for tp, meta in found.items()
            if tp.topic == self.events_topic and meta.offset >= 0
        }

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        await self._load_legacy_offsets(self.bootstrap)
        await self.consumer.start()
        try:
            while True:
                if not await self._follow_assignment():
                    await asyncio.sleep(0.1)
                    continue
                polled = await self.consumer.getmany(timeout_ms=self.within_ms, max_records=self.batch_size)
                if not polled:
                    continue
                # not recorded, offsets not committed: a restart repeats the batch
                await record_or_die(self._handle_locked(polled))
        finally:
            await self.consumer.stop()

    async def _handle_locked(self, polled: dict[TopicPartition, list[Any]]) -> None:
        async with self.parts.lock:
            if self.paused or self.wanted() != self.assigned:
                self._unread(polled)  # fetched before faust moved partitions: not ours to handle
                return
            try:
                await self._handle(polled)
            except BaseException:
                self._discard()
                raise

    def _unread(self, polled: dict[TopicPartition, list[Any]]) -> None:
        for tp, records in polled.items():
            if records and tp in self.consumer.assignment():
                self.consumer.seek(tp, records[0].offset)

    async def _handle(self, polled: dict[TopicPartition, list[Any]]) -> None:
        processor = self.parts.processor
        for tp, records in polled.items():
            for _, table in self.parts.tables:
                table.partition = tp.partition
            for record in records:
                started = time.perf_counter()

                async def to_dead_letters(reason: str, tp: TopicPartition = tp, record: Any = record) -> None:
                    await self.parts.dead_letter(
                        tp.topic, tp.partition, record.offset, record.key, record.value, reason
                    )

                await dead_letter_on_failure(
                    processor.on_event(record.key, record.value), to_dead_letters, tp.topic
                )
                labelled(metrics.PROCESSING, "event").observe(time.perf_counter() - started)
        await self._record(polled)

    async def handle_ticks(self, keys: list[bytes], partition_of: Callable[[bytes], int]) -> None:
        """The timer's due keys (the caller holds the lock): re-checked and fired like events are
        handled, and recorded the same way (there are no offsets to commit)."""
        processor = self.parts.processor
        try:
            for key in keys:
                for _, table in self.parts.tables:
                    table.partition = partition_of(key)
                started = time.perf_counter()
                await processor.on_tick(key)
                labelled(metrics.PROCESSING, "tick").observe(time.perf_counter() - started)
            await self._write_tables()
        except BaseException:
            self._discard()
            raise

    def _discard(self) -> None:
        """A batch that failed half-way: forget its pending writes and sends (nothing recorded)."""
        for overlay, _ in self.parts.tables:
            overlay.discard()
        self.parts.outputs.discard()

    async def _record(self, polled: dict[TopicPartition, list[Any]]) -> None:
        """Sends acknowledged, then table writes (RocksDB, changelog acknowledged), then offsets."""
        await self._write_tables()
        await self.parts.producer.flush()  # the unacknowledged sends too (forwards, dead letters)
        await self.consumer.commit({tp: records[-1].offset + 1 for tp, records in polled.items() if records})

    async def _write_tables(self) -> None:
        await self.parts.outputs.settle()
        acks: list[tuple[PartitionTable, int, Awaitable[Any]]] = []
        for overlay, table in self.parts.tables:
            by_partition: dict[int, list[tuple[bytes, bytes | None]]] = defaultdict(list)
            for key, value, partition in overlay.drain():
                by_partition[partition].append((key, value))
            changelog = table.table.changelog_topic_name
            for partition, writes in by_partition.items():
                table.write_batch(partition, writes)
                for key, value in writes:
                    ack = await self.parts.producer.send(changelog, value, key=key, partition=partition)
                    acks.append((table, partition, ack))
        if acks:
            done = await asyncio.gather(*(ack for _, _, ack in acks))
            newest: dict[tuple[int, int], tuple[PartitionTable, int, int]] = {}
            for (table, partition, _), meta in zip(acks, done, strict=True):
                newest[(id(table), partition)] = (table, partition, meta.offset)
            for table, partition, offset in newest.values():
                table.remember_changelog_offset(partition, offset)

    async def lag(self) -> dict[int, int]:
        """Records not yet read, by events partition (for the consumer-lag gauge)."""
        out = {}
        for tp in self.consumer.assignment():
            highwater = self.consumer.highwater(tp)
            if highwater is None:
                continue
            try:
                out[tp.partition] = max(0, highwater - await self.consumer.position(tp))
            except (KafkaError, AssertionError, ValueError):  # moved meanwhile: leave it out
                continue
        return out
