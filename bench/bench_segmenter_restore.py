"""Segmenter restore time: a fresh worker (empty data dir) recovering P profiles from the
tables' changelogs, beside the ceiling measured in the same run on the same topics — a bare
aiokafka consumer reading every changelog record.

    .venv/bin/python bench/bench_segmenter_restore.py [--profiles 1000000] [--runs 3] [--cprofile FILE]

`--cprofile FILE`: the restoring worker's event loop under cProfile (written when it stops;
`FILE.runN` per run), with the functions the restore spends its time in printed after each run.

Needs the local stack (`retarget devstack up`). Each run uses fresh topics and a fresh data
dir, and the worker runs as a separate process (`python -m retarget.segmenter`).

1. data: P synthetic profiles (an email, a one-line cart, a pending abandoned_cart wait due
   in a day, two viewed products, recent message ids — a profile the hot path would write)
   are produced straight to the `profiles` changelog, and each one's due time to the `due`
   changelog, keyed and partitioned as the worker writes them: 2P records.
2. ceiling: a bare aiokafka consumer reads all 2P records (records/s).
3. restore: a worker starts with an empty data dir; recovery is timed on its /readyz, from
   the first "recovering from changelog" answer to the first ready one (polled every 0.1 s),
   and from the process start to ready (that includes joining the group). An empty worker's
   start-to-ready on fresh topics is measured too, for the part that isn't recovery. Then
   50 profiles (random, and the last produced) are read back through /profiles.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import msgspec
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer
from bench_segmenter import BOOTSTRAP, MADE, PARTITIONS, Worker, fresh_topics

from retarget.common.kafka import delete_topics_with_prefixes, ensure_topics
from retarget.common.schemas import CartLine
from retarget.common.settings import CommonSettings
from retarget.segmenter.state import CartItem, Pending, Profile, Viewed

WS = "bench"
PLACEHOLDER = "__visitor__"


def changelogs(prefix: str) -> tuple[str, str]:
    """Faust's names for the worker's two tables' changelog topics (app id = `<prefix>-segmenter`)."""
    return f"{prefix}-segmenter-profiles-changelog", f"{prefix}-segmenter-due-changelog"


def profile_template(now: datetime) -> tuple[bytes, bytes]:
    """One profile's JSON and its due entry, with a placeholder where the visitor id goes."""
    due = now + timedelta(days=1)
    line = CartLine(product_id="p1", name="Trail Boot", price=89.5, quantity=1, currency="EUR")
    profile = Profile(
        workspace_id=WS,
        profile_id=PLACEHOLDER,
        email=f"{PLACEHOLDER}@example.com",
        first_name="Ann",
        cart={"p1": CartItem(line=line, added_at=now)},
        viewed=[Viewed(product_id=f"p{i}", at=now, name="Trail Boot", price=89.5) for i in (1, 2)],
        pending={
            "abandoned_cart": Pending(
                campaign="abandoned_cart",
                due_at=due,
                entry_message_id=f"{PLACEHOLDER}-add",
                entry_at=now,
                started_at=now,
            )
        },
        recent_message_ids=[f"{PLACEHOLDER}-{i}" for i in range(5)],
    )
    return msgspec.json.encode(profile), due.isoformat().encode()


async def produce_changelogs(prefix: str, profiles: int) -> int:
    """P profile records and P due records, keyed `workspace:visitor` (the producers' partitioner)."""
    profiles_topic, due_topic = changelogs(prefix)
    settings = CommonSettings(kafka_bootstrap=BOOTSTRAP, topic_partitions=PARTITIONS)
    await ensure_topics(settings, [profiles_topic, due_topic])
    template, due_value = profile_template(datetime.now(UTC))
    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP, linger_ms=20, max_batch_size=256 * 1024, compression_type="lz4", acks=1
    )
    await producer.start()
    try:
        futures = []
        for i in range(profiles):
            visitor = f"v{i:09d}"
            key = f"{WS}:{visitor}".encode()
            value = template.replace(PLACEHOLDER.encode(), visitor.encode())
            futures.append(await producer.send(profiles_topic, value, key=key))
            futures.append(await producer.send(due_topic, due_value, key=key))
            if len(futures) >= 20_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()
    return 2 * profiles


async def ceiling(prefix: str, records: int) -> float:
    """A bare consumer reading every changelog record: records/s, from the first record."""
    consumer = AIOKafkaConsumer(
        *changelogs(prefix),
        bootstrap_servers=BOOTSTRAP,
        group_id=f"ceiling-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=5000,
    )
    await consumer.start()
    try:
        seen, started = 0, None
        while seen < records:
            batches = await consumer.getmany(timeout_ms=1000, max_records=5000)
            for batch in batches.values():
                if started is None and batch:
                    started = time.perf_counter()
                seen += len(batch)
        return records / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        await consumer.stop()


def readiness(worker: Worker) -> dict | None:
    try:
        return httpx.get(f"http://127.0.0.1:{worker.port}/readyz", timeout=2).json()  # type: ignore[no-any-return]
    except (httpx.TransportError, ValueError):
        return None


SAMPLE = 50


def sampled_profiles_found(worker: Worker, profiles: int) -> int:
    """How many of SAMPLE random profiles (and the last one produced) the restored worker serves."""
    rng = random.Random(1)
    ids = [profiles - 1, *(rng.randrange(profiles) for _ in range(SAMPLE - 1))]
    found = 0
    for i in ids:
        try:  # the worker is busy after recovery (the timer rebuilds its heap of P due entries)
            response = httpx.get(f"http://127.0.0.1:{worker.port}/profiles/{WS}/v{i:09d}", timeout=60)
        except httpx.TransportError:
            continue
        found += response.status_code == 200 and response.json().get("profile_id") == f"v{i:09d}"
    return found


async def time_to_ready(worker: Worker, timeout_s: float = 3600) -> tuple[float, float | None]:
    """(start to ready, recovering to ready) in seconds: polled on /readyz every 0.1 s."""
    spawned = time.perf_counter()
    recovering_since = None
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        if worker.process.poll() is not None:
            raise RuntimeError(f"the worker exited with {worker.process.returncode}")
        state = await asyncio.to_thread(readiness, worker)
        if state is not None:
            if state.get("problems", {}).get("tables") and recovering_since is None:
                recovering_since = time.perf_counter()
            if state.get("ready") and state.get("assigned_topic_partitions"):
                done = time.perf_counter()
                return done - spawned, (done - recovering_since) if recovering_since else None
        await asyncio.sleep(0.1)
    raise RuntimeError(f"the worker was not ready after {timeout_s}s")


def print_profile(path: str) -> None:
    """Where the restoring worker's time went: faust's recovery path, by cumulative time."""
    import pstats

    stats = pstats.Stats(path)
    stats.sort_stats("cumulative").print_stats(
        r"_drain_messages|wait_first|conductor.py.*on_message|create_event|_slurp_changelogs|need_recovery"
        r"|tasks.py.*wait_for|apply_changelog_batch|Rdict' objects"
    )


async def one_run(folder: Path, profiles: int, cprofile: str | None = None) -> dict[str, float]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    await fresh_topics(prefix)
    built = time.perf_counter()
    records = await produce_changelogs(prefix, profiles)
    produced_s = time.perf_counter() - built
    bare = await ceiling(prefix, records)
    # the production session timeout, not bench_segmenter's 6 s: recovery starves the event
    # loop on a busy machine, and a missed heartbeat restarts the recovery after a rebalance
    worker = Worker(folder / "restore", prefix, cprofile=cprofile, RETARGET_SESSION_TIMEOUT_S="10")
    try:
        start_to_ready, recovery = await time_to_ready(worker)
        print(f"recovered {records:,} records in {recovery or float('nan'):.1f} s", flush=True)
        restored = await asyncio.to_thread(sampled_profiles_found, worker, profiles)
    finally:
        worker.stop()
    if cprofile:
        print_profile(cprofile)
    empty_start_to_ready = await empty_worker_ready(folder / "empty")
    return {
        "records": records,
        "produced_s": produced_s,
        "ceiling_per_s": bare,
        "start_to_ready_s": start_to_ready,
        "recovery_s": recovery if recovery is not None else float("nan"),
        "sampled_found": restored,
        "empty_start_to_ready_s": empty_start_to_ready,
    }


async def empty_worker_ready(folder: Path) -> float:
    """Start to ready of a worker with nothing to recover (fresh topics): the part that isn't recovery."""
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    await fresh_topics(prefix)
    worker = Worker(folder, prefix, RETARGET_SESSION_TIMEOUT_S="10")
    try:
        start_to_ready, _ = await time_to_ready(worker)
        return start_to_ready
    finally:
        worker.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=1_000_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--cprofile", help="profile the restoring worker into this file (.runN appended)")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-segmenter-restore-"))
    try:
        results = []
        for i in range(args.runs):
            profile_to = f"{args.cprofile}.run{i + 1}" if args.cprofile else None
            r = await one_run(root / f"run{i}", args.profiles, profile_to)
            results.append(r)
            rate = r["records"] / r["recovery_s"]
            print(
                f"run {i + 1}: {args.profiles:,} profiles ({r['records']:,.0f} changelog records, produced in "
                f"{r['produced_s']:.0f} s) recovered in {r['recovery_s']:.1f} s = {rate:,.0f} records/s "
                f"(ceiling: a bare aiokafka consumer {r['ceiling_per_s']:,.0f} records/s, "
                f"{rate / r['ceiling_per_s']:.0%}); start to ready {r['start_to_ready_s']:.1f} s "
                f"(an empty worker: {r['empty_start_to_ready_s']:.1f} s); {r['sampled_found']:.0f}/{SAMPLE} "
                "sampled profiles found after",
                flush=True,
            )
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print(
            f"median of {args.runs}: {args.profiles:,} profiles recovered in {med['recovery_s']:.1f} s "
            f"({med['records'] / med['recovery_s']:,.0f} records/s) vs a bare consumer "
            f"{med['ceiling_per_s']:,.0f} records/s; start to ready {med['start_to_ready_s']:.1f} s "
            f"(empty worker {med['empty_start_to_ready_s']:.1f} s)",
            flush=True,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
        await delete_topics_with_prefixes(BOOTSTRAP, MADE)


if __name__ == "__main__":
    asyncio.run(main())
