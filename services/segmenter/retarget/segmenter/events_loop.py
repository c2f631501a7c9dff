"""The events topic's hot path: batches from aiokafka straight into the faust tables' RocksDB.

Why not a faust agent: faust hands every record through its conductor, a queue and the
stream, a few event-loop turns each, and writes every table key through its own changelog
producer; a faust agent that does nothing reads ~14k records/s on our machines, and the
worker ran ~5k events/s against a 20k goal (bench/RESULTS.md). This loop reads the events
topic with aiokafka `getmany`, runs the same rules (`ProfileProcessor`) over a whole poll,
and writes each touched key once into the same tables faust keeps: their own stores and
their own changelog topics, so faust's recovery, standby replicas and rebalancing keep
working on exactly the data it always had.

Faust still decides who owns what: the loop reads the events partitions whose numbers
faust assigned to this worker (the co-partitioned `profile-events` topic), stops while faust
rebalances or recovers, and finishes the batch in hand before faust gives a partition away
(`pause`). One batch at a time with faust's agent and the timer (the shared lock).

Where it reads from is state like the rest: each batch records the next offset of each
events partition in the `positions` table, with the data (recording.py says in which
order), and the loop seeks there when it gets a partition. So the position moves with the
partition's state — restored, standby-replicated and recovered by faust with it — and no
consumer group's offsets (which expire when a group has no members, KIP-211) decide
anything: the consumer has no group. A partition without a position yet (a worker upgraded
from a version that committed offsets) starts at the offsets the old groups committed,
else at the beginning.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Awaitable, Callable
from dataclasses import dataclass
from datetime import datetime
from typing import Any

from aiokafka import AIOKafkaConsumer
from aiokafka.admin import AIOKafkaAdminClient
from aiokafka.errors import KafkaError
from aiokafka.structs import TopicPartition

from retarget.common.metrics import labelled
from retarget.segmenter import metrics
from retarget.segmenter.batch_agent import record_or_die
from retarget.segmenter.dead_letters import dead_letter_on_failure
from retarget.segmenter.processor import MAX_KEY_BYTES, ProfileProcessor
from retarget.segmenter.recording import PartitionTable, Recorder, decode_position, position_key
from retarget.segmenter.watermark import ReadWatermark

log = logging.getLogger(__name__)


@dataclass
class LoopParts:
    """What the loop shares with the rest of the worker."""

    app: Any
    processor: ProfileProcessor
    recorder: Recorder  # the processor's overlays and outputs, and how a batch is recorded
    positions: PartitionTable
    lock: asyncio.Lock
    dead_letter: Callable[[str, int, int, bytes | None, bytes | None, str], Awaitable[None]]
    partition_of: Callable[[bytes], int]  # the events partition a key lives in (the producers' partitioner)


class EventsLoop:
    def __init__(
        self,
        parts: LoopParts,
        *,
        bootstrap: str,
        events_topic: str,
        owner_topic: str,
        batch_size: int,
        within_s: float,
        legacy_groups: tuple[str, ...] = (),
    ) -> None:
        self.parts = parts
        self.bootstrap, self.legacy_groups = bootstrap, legacy_groups
        self.legacy_offsets: dict[TopicPartition, int] = {}
        self.events_topic, self.owner_topic = events_topic, owner_topic
        self.batch_size, self.within_ms = batch_size, max(1, int(within_s * 1000))
        self.consumer = AIOKafkaConsumer(
            bootstrap_servers=bootstrap,
            group_id=None,  # faust assigns the partitions; the positions table keeps the offsets
            enable_auto_commit=False,
            auto_offset_reset="earliest",
            max_poll_records=batch_size,
            fetch_max_bytes=16 * 2**20,
        )
        self.assigned: frozenset[int] = frozenset()
        self.read_mark = ReadWatermark()  # the timer fires nothing beyond what was read
        self.paused = True  # until faust has assigned and recovered partitions
        self.pauses = 0  # how often faust paused the loop (an assignment read across one is stale)
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
        """Faust is taking partitions away: finish the batch in hand (it is recorded), then wait."""
        async with self.parts.lock:
            self.paused = True
            self.pauses += 1

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
            pauses = self.pauses
            partitions = [TopicPartition(self.events_topic, p) for p in sorted(wanted)]
            self.consumer.assign(partitions)
            for tp in partitions:
                await self._seek_to_start(tp)
            self.read_mark.assigned({tp.partition: await self._position(tp) for tp in partitions})
            if self.pauses != pauses:
                # faust moved partitions while this awaited: the positions read may predate the
                # recovery; unpaused now, the loop would read on from them (assigned again instead)
                return False
            self.assigned, self.paused = wanted, False
            log.info("events partitions assigned", extra={"partitions": sorted(wanted)})
        return True

    async def _seek_to_start(self, tp: TopicPartition) -> None:
        """The recorded position, restored with the partition's state (see the module's note)."""
        position = decode_position(self.parts.positions.get_in(tp.partition, position_key(tp.partition)))
        if position is None:
            position = self.legacy_offsets.get(tp)
        if position is not None:
            self.consumer.seek(tp, position)
        else:
            await self.consumer.seek_to_beginning(tp)

    async def _position(self, tp: TopicPartition) -> int | None:
        try:
            return await self.consumer.position(tp)
        except (KafkaError, AssertionError, ValueError):  # not known now: the watermark waits
            return None

    def watermark(self, now: float) -> float:
        """Receipt time up to which every owned events partition was handled (watermark.py)."""
        return self.read_mark.at(now, lambda p: self.consumer.highwater(TopicPartition(self.events_topic, p)))

    async def _load_legacy_offsets(self) -> None:
        """Where older versions had read the events topic to, committed under a group (this loop's
        `<app id>-events`, before it the faust agent's): a partition with no recorded position
        carries on from there instead of replaying the whole topic."""
        admin = AIOKafkaAdminClient(bootstrap_servers=self.bootstrap)
        try:
            await admin.start()
            for group in self.legacy_groups:
                found = await admin.list_consumer_group_offsets(group)
                for tp, meta in found.items():
                    if tp.topic == self.events_topic and meta.offset >= 0:
                        self.legacy_offsets.setdefault(tp, meta.offset)
        except KafkaError as exc:
            log.warning("legacy offsets not read", extra={"error": repr(exc)})
        finally:
            await admin.close()

    # -- the loop -------------------------------------------------------------------------

    async def run(self) -> None:
        if self.legacy_groups:
            await self._load_legacy_offsets()
        await self.consumer.start()
        try:
            while True:
                if not await self._follow_assignment():
                    await asyncio.sleep(0.1)
                    continue
                polled = await self.consumer.getmany(timeout_ms=self.within_ms, max_records=self.batch_size)
                if not polled:
                    continue
                # not recorded, position not moved: a restart repeats the batch
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
                self.parts.recorder.discard()
                raise

    def _unread(self, polled: dict[TopicPartition, list[Any]]) -> None:
        for tp, records in polled.items():
            if records and tp in self.consumer.assignment():
                self.consumer.seek(tp, records[0].offset)

    async def _handle(self, polled: dict[TopicPartition, list[Any]]) -> None:
        processor = self.parts.processor
        counts, per_event = self.parts.recorder.counts, labelled(metrics.PROCESSING, "event")
        for tp, records in polled.items():
            self._enter_partition(tp.partition)
            for record in records:
                started = time.perf_counter()

                async def to_dead_letters(reason: str, tp: TopicPartition = tp, record: Any = record) -> None:
                    await self.parts.dead_letter(
                        tp.topic, tp.partition, record.offset, record.key, record.value, reason
                    )

                right = self._partition_of(record.key)
                work = (
                    processor.on_event(record.key, record.value)
                    if right in (None, tp.partition)
                    else self._reroute(tp, record, right)
                )
                await dead_letter_on_failure(work, to_dead_letters, tp.topic)
                counts.observe(per_event, time.perf_counter() - started)  # added once recorded
        positions = {tp.partition: records[-1].offset + 1 for tp, records in polled.items() if records}
        await self.parts.recorder.record(positions)
        for tp, records in polled.items():
            if records:
                self.read_mark.handled(tp.partition, records[-1].offset + 1, records[-1].timestamp)

    def _partition_of(self, key: bytes | None) -> int | None:
        """Where the key lives; None for a key the rules refuse anyway (dead-lettered here)."""
        if not key or len(key) > MAX_KEY_BYTES:
            return None
        return self.parts.partition_of(key)

    async def _reroute(self, tp: TopicPartition, record: Any, right: int) -> None:
        """A record on a partition its key does not hash to (produced with another partitioner,
        or an explicit partition) goes, as it is, to the key's own partition: handled here, it
        would start a second profile in this partition's store, where neither the timer nor the
        key's owner looks. Acknowledged before the position moves past it, like every send of
        the batch; its owner handles it as any event (a replay's copy is a duplicate there)."""
        await self.parts.recorder.outputs("events", record.key, record.value, True, right)
        self.parts.recorder.counts.inc(labelled(metrics.EVENTS, "rerouted"))
        log.warning(
            "an event on a partition its key does not hash to; re-routed",
            extra={"partition": tp.partition, "offset": record.offset, "to_partition": right},
        )

    def _enter_partition(self, partition: int) -> None:
        for _, table in self.parts.recorder.tables:
            table.partition = partition

    async def handle_ticks(
        self, keys: list[bytes], partition_of: Callable[[bytes], int], until: datetime | None = None
    ) -> None:
        """The timer's due keys (the caller holds the lock): re-checked and fired like events are
        handled — waits due by `until` (the read watermark) — and recorded the same way (no
        position moves)."""
        processor = self.parts.processor
        counts, per_tick = self.parts.recorder.counts, labelled(metrics.PROCESSING, "tick")
        try:
            for key in keys:
                self._enter_partition(partition_of(key))
                started = time.perf_counter()
                await processor.on_tick(key, until)
                counts.observe(per_tick, time.perf_counter() - started)
            await self.parts.recorder.record()
        except BaseException:
            self.parts.recorder.discard()
            raise

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
