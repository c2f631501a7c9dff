"""What recording a batch's changelog costs with and without the fence (fencing.py), alone:
no faust, no rules, the same records each way, on the local stack's broker.

Each batch: `--partitions` events partitions, each with `--keys` due and `--keys` profile
records and one position record (a poll of ~1,000 events of a shop's mix writes about that).
- unfenced (before): one idempotent producer; due's records acknowledged, then profiles',
  then the positions' (the former recording order);
- fenced (now): FencedChangelog.write — per partition one transaction on its own producer.

    .venv/bin/python bench/bench_segmenter_fencing.py --batches 200 --runs 3
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
import uuid
from types import SimpleNamespace
from typing import Any

from retarget.common.kafka import ensure_topics, make_producer
from retarget.common.settings import CommonSettings
from retarget.segmenter.fencing import FencedChangelog, PartitionWrites

TABLES = ("due", "profiles", "positions")


def batch(prefix: str, partitions: int, keys: int, n: int) -> PartitionWrites:
    value = b"x" * 400  # about a profile's size
    return {
        p: [
            (SimpleNamespace(changelog=f"{prefix}-due-changelog"), [(b"k%d-%d" % (n, i), b"1") for i in range(keys)]),
            (SimpleNamespace(changelog=f"{prefix}-profiles-changelog"), [(b"k%d-%d" % (n, i), value) for i in range(keys)]),
            (SimpleNamespace(changelog=f"{prefix}-positions-changelog"), [(b"events:%d" % p, b"%d" % n)]),
        ]
        for p in range(partitions)
    }  # fmt: skip


async def unfenced(settings: CommonSettings, batches: list[PartitionWrites]) -> float:
    producer = make_producer(settings, linger_ms=5, max_batch_size=256 * 1024)
    await producer.start()
    try:
        started = time.perf_counter()
        for writes in batches:
            for table in range(len(TABLES)):  # each table acknowledged before the next is sent
                acks: list[Any] = []
                for p, tables in writes.items():
                    target, records = tables[table]
                    for key, value in records:
                        acks.append(await producer.send(target.changelog, value, key=key, partition=p))
                await asyncio.gather(*acks)
        return time.perf_counter() - started
    finally:
        await producer.stop()


async def fenced(settings: CommonSettings, prefix: str, batches: list[PartitionWrites]) -> float:
    made: list[Any] = []

    def make(tid: str) -> Any:
        made.append(make_producer(settings, transactional_id=tid, linger_ms=5, max_batch_size=256 * 1024))
        return made[-1]

    changelog = FencedChangelog(f"{prefix}-bench", make)
    await changelog.own(list(batches[0]))  # every partition of the batches: fenced up front
    try:
        started = time.perf_counter()
        for writes in batches:
            await changelog.write(writes)
        return time.perf_counter() - started
    finally:
        await asyncio.gather(*(p.stop() for p in made))


async def main(args: argparse.Namespace) -> None:
    settings = CommonSettings(topic_partitions=args.partitions)
    for run in range(1, args.runs + 1):
        prefix = f"benchfence{uuid.uuid4().hex[:6]}"
        await ensure_topics(settings, [f"{prefix}-{t}-changelog" for t in TABLES])
        batches = [batch(prefix, args.partitions, args.keys, n) for n in range(args.batches)]
        before = await unfenced(settings, batches)
        after = await fenced(settings, prefix, batches)
        print(
            f"run {run}: {args.batches} batches — unfenced {before / args.batches * 1000:.1f} ms/batch, "
            f"fenced {after / args.batches * 1000:.1f} ms/batch ({after / before:.2f}x)",
            flush=True,
        )
        RESULTS.append((before, after))
    ratios = [a / b for b, a in RESULTS]
    print(f"median ratio fenced/unfenced: {statistics.median(ratios):.2f}x")


RESULTS: list[tuple[float, float]] = []

if __name__ == "__main__":
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--batches", type=int, default=200)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--partitions", type=int, default=4)
    parser.add_argument(
        "--keys", type=int, default=100, help="due and profile records per partition per batch"
    )
    asyncio.run(main(args=parser.parse_args()))
