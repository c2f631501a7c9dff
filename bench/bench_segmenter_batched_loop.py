"""The segmenter's rules on a bare batched loop, beside the real worker — an experiment, not the
product: the same `ProfileProcessor` and sample campaigns, fed by a bare aiokafka `getmany`
loop, writing RocksDB (rocksdict, one database per partition, a write batch per poll) and
producing the changelog itself, offsets committed after both. Beside it, in the same run on
the same topic: the bare aiokafka consumer (the read ceiling) and the worker
(`python -m retarget.segmenter`, as bench_segmenter.py runs it).

    .venv/bin/python bench/bench_segmenter_batched_loop.py [--events 60000] [--runs 3]

Why it exists: when the worker read events through a faust agent it ran ~5k events/s
against a 20k goal (a faust agent that does nothing reads ~14k/s here); this measured what a
batched loop would reach (28k), which led to the worker's events loop. It now shows what the
worker's faust around the loop (rebalancing, recovery, standbys, the timer) costs. Not built
in the bare loop: any of that.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import shutil
import statistics
import tempfile
import time
import uuid
from pathlib import Path
from typing import Any

from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from bench_segmenter import BOOTSTRAP, PARTITIONS, Worker, ceiling, fresh_topics, produce, shop_events
from rocksdict import Options, Rdict, WriteBatch

from retarget.common.clock import SystemClock
from retarget.common.kafka import delete_topics_with_prefixes, ensure_topics
from retarget.common.settings import CommonSettings
from retarget.segmenter.app import campaigns_from
from retarget.segmenter.batching import BatchOutputs, WriteBehind
from retarget.segmenter.processor import ProfileProcessor
from retarget.segmenter.schedule import DueSchedule
from retarget.segmenter.settings import SegmenterSettings

#: long waits for both: nothing fires during the drain, so both do the same work (events only)
WAITS = {"abandoned_cart": "1h"}
OUTPUTS = ("triggers", "events", "profile_events", "dead_letter")


class PartitionStore:
    """A table over one RocksDB database per partition; reads and writes go to `current`'s."""

    def __init__(self, folder: Path, name: str) -> None:
        options = Options(raw_mode=True)
        options.create_if_missing(True)
        self.dbs = [Rdict(str(folder / f"{name}-{p}"), options) for p in range(PARTITIONS)]
        self.current = 0
        self.batches: dict[int, WriteBatch] = {}
        self.changelog: list[tuple[int, bytes, bytes | None]] = []

    def get(self, key: bytes) -> bytes | None:
        value: bytes | None = self.dbs[self.current].get(key)
        return value

    def __setitem__(self, key: bytes, value: bytes) -> None:
        self._batch().put(key, value)
        self.changelog.append((self.current, key, value))

    def __delitem__(self, key: bytes) -> None:
        self._batch().delete(key)
        self.changelog.append((self.current, key, None))

    def _batch(self) -> WriteBatch:
        batch = self.batches.get(self.current)
        if batch is None:
            batch = self.batches[self.current] = WriteBatch(raw_mode=True)
        return batch

    def flush(self) -> None:
        for partition, batch in self.batches.items():
            self.dbs[partition].write(batch)
        self.batches.clear()

    def close(self) -> None:
        for db in self.dbs:
            db.close()


async def batched_loop(topic: str, prefix: str, n: int, folder: Path) -> float:
    """Events/s of the rules fed by getmany batches, with RocksDB and changelog writes per batch."""
    changelogs = {name: f"{prefix}-loop-{name}-changelog" for name in ("profiles", "due")}
    common = CommonSettings(kafka_bootstrap=BOOTSTRAP, topic_partitions=PARTITIONS)
    await ensure_topics(common, list(changelogs.values()), configs={"cleanup.policy": "compact"})
    await ensure_topics(common, [f"{prefix}.loop-{output}" for output in OUTPUTS])
    stores = {name: PartitionStore(folder, name) for name in changelogs}
    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP, acks="all", enable_idempotence=True, linger_ms=5,
        compression_type="lz4", max_batch_size=256 * 1024,
    )  # fmt: skip
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=BOOTSTRAP, group_id=f"loop-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest", enable_auto_commit=False, max_poll_records=2000,
    )  # fmt: skip
    await producer.start()
    await consumer.start()

    async def enqueue(output: str, key: bytes, value: bytes, wait: bool, partition: int | None) -> Any:
        return await producer.send(f"{prefix}.loop-{output}", value, key=key, partition=partition)

    outputs = BatchOutputs(enqueue)
    profiles, due = (WriteBehind(stores[name]) for name in ("profiles", "due"))  # type: ignore[arg-type]
    settings = SegmenterSettings(campaign_waits=WAITS)
    processor = ProfileProcessor(
        profiles=profiles, due=due, send=outputs, campaigns=campaigns_from(settings),
        clock=SystemClock(), schedule=DueSchedule(), partitions=PARTITIONS,
    )  # fmt: skip
    seen, started = 0, None
    try:
        while seen < n:
            polled = await consumer.getmany(timeout_ms=1000, max_records=2000)
            started = started or time.perf_counter()
            for tp, records in polled.items():
                for store in stores.values():
                    store.current = tp.partition
                for record in records:
                    await processor.on_event(record.key, record.value)
                # the batch's sends acknowledged, then its table writes: RocksDB and changelog
                await outputs.settle()
                for table in (profiles, due):
                    table.write(lambda _: None)
                acks = []
                for name, store in stores.items():
                    store.flush()
                    for partition, key, value in store.changelog:
                        acks.append(
                            await producer.send(changelogs[name], value, key=key, partition=partition)
                        )
                    store.changelog.clear()
                await asyncio.gather(*acks)
                seen += len(records)
            await consumer.commit()
        rate = seen / (time.perf_counter() - (started or time.perf_counter()))
        stored = sum(1 for db in stores["profiles"].dbs for _ in db.keys())
        if stored < n // 10:  # ~n/6 visitors: a loop that wrote nothing measured nothing
            raise SystemExit(f"the loop stored only {stored} profiles for {n} events")
        return rate
    finally:
        await consumer.stop()
        await producer.stop()
        for store in stores.values():
            store.close()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-loop-"))
    prefixes: set[str] = set()
    results = []
    try:
        for run in range(args.runs):
            prefix = f"bench{uuid.uuid4().hex[:8]}"
            prefixes.add(prefix)
            topics = await fresh_topics(prefix)
            await produce(topics.events, shop_events(args.events))
            bare = await ceiling(topics.events, args.events)
            loop = await batched_loop(topics.events, prefix, args.events, root / f"run{run}")
            worker = Worker(
                root / f"worker{run}", prefix,
                RETARGET_CAMPAIGN_WAITS=json.dumps(WAITS),
            )  # fmt: skip
            try:
                await worker.wait_up()
                faust_rate = await worker.drain(args.events)
            finally:
                worker.stop()
            results.append((loop, faust_rate, bare))
            print(
                f"run {run + 1}: batched loop {loop:,.0f} events/s; faust worker {faust_rate:,.0f} events/s "
                f"({loop / faust_rate:.1f}x); ceiling (bare aiokafka consumer) {bare:,.0f}/s",
                flush=True,
            )
        loop, faust_rate, bare = (statistics.median(r[i] for r in results) for i in range(3))
        print(
            f"median of {args.runs}: batched loop {loop:,.0f} events/s, faust worker {faust_rate:,.0f} events/s "
            f"({loop / faust_rate:.1f}x), ceiling {bare:,.0f}/s"
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
        await delete_topics_with_prefixes(BOOTSTRAP, prefixes)


if __name__ == "__main__":
    asyncio.run(main())
