"""Segmenter with many workspaces: 1,000 workspaces x 5 campaigns of their own in the change
feed against one workspace on the bundled campaigns, same events, same run.

    .venv/bin/python bench/bench_segmenter_workspaces.py [--events 60000] [--runs 2]
        [--workspaces 1000]

Needs the local stack. Per run, the same shop traffic (bench_segmenter.shop_events) is
produced twice to fresh topics: once all in one workspace with an empty feed (today's
figure), once spread over the workspaces, each of which has its 5 campaigns (the bundled
ones, waits changed so they are the workspace's own) in the feed. A worker process drains
each; events/s from its counter, RSS after the drain, and the time from the worker's start
to ready (it reads the feed first). The order of the two alternates between runs. Also
the time a ConfigFollower with the registry subscribed takes to read the feed, in this process,
and the per-event work paired: a real ProfileProcessor over dict tables (no Kafka, no faust)
for each setup, taking turns on chunks of the same events, so the machine's load (shared by
several sessions) hits both alike; the median of the per-chunk ratios.
"""

from __future__ import annotations

import argparse
import asyncio
import random
import shutil
import statistics
import tempfile
import time
import tracemalloc
import uuid
from pathlib import Path

import httpx
import msgspec
from bench_segmenter import BOOTSTRAP, MADE, Worker, fresh_topics, produce, shop_events
from bench_segmenter_rules import nothing

from retarget.common.clock import SystemClock
from retarget.common.kafka import delete_topics_with_prefixes
from retarget.common.schemas import TrackedEvent, decoder, encode
from retarget.common.topics import visitor_key
from retarget.config.defaults import bundled_campaigns
from retarget.config.follower import ConfigFollower
from retarget.config.records import config_topic
from retarget.config.state import ConfigState
from retarget.config.testing import publish_changes
from retarget.segmenter.campaign_registry import CampaignRegistry
from retarget.segmenter.campaigns import read_campaign_files
from retarget.segmenter.processor import ProfileProcessor
from retarget.segmenter.schedule import DueSchedule
from retarget.segmenter.settings import DEFAULT_CAMPAIGNS_DIR
from retarget.segmenter.testing import campaign_record

_event = decoder(TrackedEvent)


def spread(records: list[tuple[bytes, bytes]], workspaces: list[str]) -> list[tuple[bytes, bytes]]:
    """The same events, each visitor in one of the workspaces."""
    rng = random.Random(11)
    of_visitor: dict[str | None, str] = {}
    out = []
    for _, value in records:
        event = _event.decode(value)
        ws = of_visitor.setdefault(event.anonymous_id, rng.choice(workspaces))
        moved = msgspec.structs.replace(event, workspace_id=ws)
        out.append((visitor_key(ws, moved.user_id, moved.anonymous_id), encode(moved)))
    return out


def feed(workspaces: list[str]) -> list:
    bundled = bundled_campaigns()
    records = []
    for i, ws in enumerate(workspaces):
        for name, body in bundled.items():
            own = {**body, "wait": f"{3 + i % 5}h", "description": f"{ws}'s {name}"}
            records.append(campaign_record(ws, name, own))
    return records


async def time_to_ready(worker: Worker, started: float) -> float:
    await worker.wait_up()
    url = f"http://127.0.0.1:{worker.port}/readyz"
    while True:
        try:
            if (await asyncio.to_thread(httpx.get, url, timeout=2)).status_code == 200:
                return time.perf_counter() - started
        except httpx.TransportError:
            pass
        await asyncio.sleep(0.1)


async def drain(folder: Path, records: list[tuple[bytes, bytes]], changes: list) -> dict[str, float]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    topics = await fresh_topics(prefix)
    if changes:
        await publish_changes(BOOTSTRAP, config_topic(prefix), changes)
    await produce(topics.events, records)
    started = time.perf_counter()
    worker = Worker(folder, prefix)
    try:
        ready_s = await time_to_ready(worker, started)
        rate = await worker.drain(len(records))
        return {"events_per_s": rate, "rss_mib": worker.rss_mib(), "ready_s": ready_s}
    finally:
        worker.stop()


async def per_event_paired(
    records: list[tuple[bytes, bytes]], workspaces: list[str], changes: list, chunks: int = 12
) -> dict[str, float]:
    many_records = spread(records, workspaces)
    single = _processor(CampaignRegistry(read_campaign_files(DEFAULT_CAMPAIGNS_DIR)))
    registry = CampaignRegistry(read_campaign_files(DEFAULT_CAMPAIGNS_DIR))
    state = ConfigState(["campaign"])  # what the worker's follower holds besides the registry
    for change in changes:
        if state.apply(change):
            registry.on_change(change)
    many = _processor(registry)
    size = len(records) // chunks
    ratios, rates = [], []
    for i in range(chunks):
        part = slice(i * size, (i + 1) * size)
        pair = [(single, records[part]), (many, many_records[part])]
        took = {}
        for processor, chunk in pair if i % 2 == 0 else pair[::-1]:
            started = time.perf_counter()
            for key, value in chunk:
                await processor.on_event(key, value)
            took[id(processor)] = time.perf_counter() - started
        ratios.append(took[id(single)] / took[id(many)])  # > 1: many is faster
        rates.append(size / took[id(single)])
    return {"ratio": statistics.median(ratios), "single_per_s": statistics.median(rates)}


def _processor(registry: CampaignRegistry) -> ProfileProcessor:
    return ProfileProcessor(
        profiles={},
        due={},
        send=nothing,
        campaigns=registry.campaigns_for,
        clock=SystemClock(),
        schedule=DueSchedule(),
    )


async def read_feed(changes: list) -> dict[str, float]:
    """A follower with the registry subscribed reading `changes` from a fresh feed topic: the
    time, then (a second reader, under tracemalloc) what its state and the registry hold."""
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    MADE.add(prefix)
    await publish_changes(BOOTSTRAP, config_topic(prefix), changes)
    took, _ = await _read(prefix, changes)
    tracemalloc.start()
    _, kept = await _read(prefix, changes)  # kept alive while measured
    held = tracemalloc.get_traced_memory()[0] / 2**20
    tracemalloc.stop()
    assert kept is not None
    return {"read_s": took, "held_mib": held}


async def _read(prefix: str, changes: list) -> tuple[float, tuple[ConfigFollower, CampaignRegistry]]:
    registry = CampaignRegistry(read_campaign_files(DEFAULT_CAMPAIGNS_DIR))
    follower = ConfigFollower(BOOTSTRAP, config_topic(prefix), kinds=["campaign"])
    follower.subscribe(registry.on_change)
    started = time.perf_counter()
    await follower.start()
    took = time.perf_counter() - started
    await follower.stop()
    assert len(registry) == len({c.workspace_id for c in changes})
    return took, (follower, registry)


def summarise(
    single: list[dict[str, float]], many: list[dict[str, float]], runs: int, workspaces: int
) -> None:
    med = {k: statistics.median(r[k] for r in single) for k in single[0]}
    med_many = {k: statistics.median(r[k] for r in many) for k in many[0]}
    print(
        f"median of {runs}: one workspace {med['events_per_s']:,.0f} events/s, "
        f"{workspaces} workspaces x 5 campaigns {med_many['events_per_s']:,.0f} events/s "
        f"({med_many['events_per_s'] / med['events_per_s'] - 1:+.1%}); RSS {med['rss_mib']:,.0f} vs "
        f"{med_many['rss_mib']:,.0f} MiB; ready {med['ready_s']:.1f} vs {med_many['ready_s']:.1f} s",
        flush=True,
    )


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--runs", type=int, default=2)
    parser.add_argument("--workspaces", type=int, default=1000)
    args = parser.parse_args()
    workspaces = [f"shop-{i:04d}" for i in range(args.workspaces)]
    changes = feed(workspaces)
    root = Path(tempfile.mkdtemp(prefix="bench-workspaces-"))
    try:
        single: list[dict[str, float]] = []
        many: list[dict[str, float]] = []
        for i in range(args.runs):
            records = shop_events(args.events)
            order = [("single", records, []), ("many", spread(records, workspaces), changes)]
            for name, recs, feed_changes in order if i % 2 == 0 else order[::-1]:
                r = await drain(root / f"run{i}-{name}", recs, feed_changes)
                (single if name == "single" else many).append(r)
                print(
                    f"run {i + 1} {name}: {r['events_per_s']:,.0f} events/s, RSS {r['rss_mib']:,.0f} MiB, "
                    f"ready {r['ready_s']:.1f} s after start",
                    flush=True,
                )
        if args.runs:
            summarise(single, many, args.runs, args.workspaces)
        p = await per_event_paired(shop_events(args.events), workspaces, changes)
        print(
            f"per-event work, paired over the same events: {args.workspaces} workspaces run at "
            f"{p['ratio']:.1%} of one workspace's rate ({p['single_per_s']:,.0f} events/s, one core, no Kafka)",
            flush=True,
        )
        r = await read_feed(changes)
        print(
            f"feed of {len(changes):,} campaign records: read and applied in {r['read_s']:.2f} s "
            f"(the follower's state and the registry hold {r['held_mib']:,.1f} MiB)",
            flush=True,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
        await delete_topics_with_prefixes(BOOTSTRAP, MADE)


if __name__ == "__main__":
    asyncio.run(main())
