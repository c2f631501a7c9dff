"""Zombie fencing: a batch's changelog and position records go out in one Kafka transaction per
events partition, from a transactional producer whose `transactional_id` names the partition.

Why: a worker expelled from the group while stalled mid-batch (SIGSTOP, a long GC pause, a
network partition) wakes up still holding that batch. Without a fence, its changelog and
position records land after the partition's new owner recovered, and the new owner's state
then misses them, or is overwritten by them at its next recovery. The new owner starts the
producer of the same id (`InitProducerId`): the broker aborts the old owner's open
transaction and refuses every later send or commit of the old producer (ProducerFenced), so
the stalled batch fails and the worker exits (batch_agent.record_or_die) before writing its
local state. faust's recovery reads the changelogs `read_committed` (faust_internals), so an
aborted or still-open transaction is never restored.

The positions table and both data tables are co-partitioned with the events topic (and the
agent's internal topics, and the timer's keys): partition p's records of every table belong
to transactional id p, whoever (loop, agent, timer) records them.

The triggers, merges and forwards are sent before, without a transaction: their consumers
deduplicate them by id, and a new owner replays the same records with the same ids.
"""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Iterable
from typing import Any

from retarget.common.faults import crash_point
from retarget.segmenter.changelog_batches import SentBatch, newest_offset, send_in_batches

Writes = list[tuple[bytes, bytes | None]]  # (key, value or None for a deletion)
#: per events partition, in the order to send: (table, its writes in that partition)
PartitionWrites = dict[int, list[tuple[Any, Writes]]]
#: (table, partition, writes, changelog offset to store with them)
Staged = list[tuple[Any, int, Writes, int]]


class PartitionNotOwned(RuntimeError):
    """A batch writes a partition faust moved to another worker: recorded, it would fence the
    partition's new owner and land after its recovery (handled as a fenced batch: exit)."""


def transactional_id(app_id: str, partition: int) -> str:
    return f"{app_id}-{partition}"


class FencedChangelog:
    """A started transactional producer per owned events partition (`make(transactional_id)`
    builds one). Starting it is what fences the partition's previous owner."""

    def __init__(self, app_id: str, make: Callable[[str], Any]) -> None:
        self.app_id, self._make = app_id, make
        self._producers: dict[int, Any] = {}
        self._released: set[int] = set()  # owned once, given away since (own)
        self._lock = asyncio.Lock()

    async def own(self, partitions: Iterable[int]) -> None:
        """The partitions this worker now owns: fence their previous owners at once (before this
        worker writes anything there), drop the producers of the others (a producer fenced by a
        later owner is dead for good; if the partition comes back, a new one is made)."""
        wanted = set(partitions)
        async with self._lock:
            self._released = (self._released | set(self._producers)) - wanted
            gone = [self._producers.pop(p) for p in list(self._producers) if p not in wanted]
        await asyncio.gather(*(producer.stop() for producer in gone), return_exceptions=True)
        await asyncio.gather(*(self._producer(p) for p in wanted))

    async def _producer(self, partition: int) -> Any:
        async with self._lock:
            producer = self._producers.get(partition)
            if producer is None:
                producer = self._make(transactional_id(self.app_id, partition))
                await producer.start()  # InitProducerId: the fence
                self._producers[partition] = producer
            return producer

    async def write(self, writes: PartitionWrites) -> Staged:
        """Every partition's records in a transaction of its own, all committed; per table and
        partition, the offset recovery must start after."""
        moved = sorted(p for p in writes if p in self._released)
        if moved:  # a stale batch: a producer started for it would fence the partition's owner
            raise PartitionNotOwned(f"partition {', '.join(map(str, moved))} moved to another worker")
        sent: list[tuple[Any, Any, int, Writes, list[SentBatch]]] = []
        for partition, tables in writes.items():
            producer = await self._producer(partition)
            await producer.begin_transaction()
            for table, table_writes in tables:  # closed batches: no linger (changelog_batches.py)
                batches = await send_in_batches(producer, table.changelog, partition, table_writes)
                sent.append((producer, table, partition, table_writes, batches))
        # every record on the broker, none visible to a read_committed reader yet
        acks = [await asyncio.gather(*(ack for ack, _ in batches)) for *_, batches in sent]
        crash_point("segmenter.in_changelog_transaction")
        producers = {id(producer): producer for producer, *_ in sent}
        # a fenced producer raises here: the batch is not recorded and the worker exits
        await asyncio.gather(*(producer.commit_transaction() for producer in producers.values()))
        staged: Staged = []
        for (_, table, partition, table_writes, batches), metas in zip(sent, acks, strict=True):
            if metas:
                # the commit marker follows the transaction's last record in each partition (one
                # writer per partition: the fence): stored, a restart finds its store caught up
                last = newest_offset(metas[-1], batches[-1][1])
                staged.append((table, partition, table_writes, last + 1))
        return staged
