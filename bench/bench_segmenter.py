"""Segmenter benchmark: events/s through one worker (RocksDB, sample campaigns), timer lag under
load and during a burst, RSS and disk per profile — beside two ceilings measured in the same
run on the same topic: a bare aiokafka consumer, and a faust agent that does nothing with its
records (the most a faust worker can read).

    .venv/bin/python bench/bench_segmenter.py [--events 200000] [--runs 3] [--profiles 200000]
        [--lag-load 0.7] [--cprofile worker.prof]

Needs the local stack (`retarget devstack up`). Each run uses fresh topics and a fresh data
dir under a temporary folder, and the worker runs as a separate process
(`python -m retarget.segmenter`), exactly as in production.

1. throughput: N events (a shop's mix: views, cart adds, identifies, pages, orders; ~N/6
   visitors) are produced first, then one worker with the sample campaigns as shipped
   drains them; events/s from the worker's own counter. Then the same records again
   through a worker whose cart wait is 2 s, so every cart fires within the drain (the
   stricter number). Ceilings: a bare aiokafka consumer and a bare faust agent (uvloop,
   1,000-record batches) reading the same N records.
2. timer lag: once the drained carts' triggers have fired, events arrive at a fixed rate
   (70% of what the worker just drained) with a 2 s cart wait; p50/p99 of fired_at - due_at
   over the triggers of this phase's carts (each event is stamped with the time it is sent).
3. timer lag during a burst: ~500 carts are read by an idle worker, then N events arrive at
   once, a second before the carts are due; p50/p99 of the carts' triggers.
4. size: P visitors with one cart add each (P profiles + P due entries); RSS of the worker
   and disk of its data dir after draining (run it with --profiles 1000000 for the goal).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import signal
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime, timedelta
from pathlib import Path

import httpx
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from retarget.common.kafka import delete_topics_with_prefixes, ensure_topics
from retarget.common.schemas import TrackedEvent, TriggerFired, decoder, encode
from retarget.common.settings import CommonSettings
from retarget.common.topics import Topics, visitor_key
from retarget.segmenter.app import internal_topics

BOOTSTRAP = os.environ.get("RETARGET_KAFKA_BOOTSTRAP", "127.0.0.1:19092")
PARTITIONS = 4
WS = "bench"


def shop_events(
    n: int, *, cart_only: bool = False, start: datetime | None = None, rate: float | None = None
) -> list[tuple[bytes, bytes]]:
    """n events of ~n/6 visitors: 2 views, a page, an identify, a cart add, sometimes an order.

    With `start` and `rate`, each visitor's events are stamped with the time `produce(rate=...)`
    will send them (so a cart's 2 s wait runs from its send, not from when the list was built).
    """
    out: list[tuple[bytes, bytes]] = []
    rng = random.Random(7)
    while len(out) < n:
        visitor = uuid.uuid4().hex[:12]
        if start is not None and rate:
            now = start + timedelta(seconds=len(out) / rate)
        else:
            now = datetime.now(UTC)

        def ev(
            kind: str, name: str | None = None, v: str = visitor, at: datetime = now, **fields
        ) -> TrackedEvent:
            return TrackedEvent(
                workspace_id=WS,
                type=kind,
                message_id=uuid.uuid4().hex,
                timestamp=at,
                received_at=at,
                anonymous_id=v,
                event=name,
                **fields,
            )

        product = {
            "product_id": f"p{rng.randrange(500)}",
            "name": "Trail Boot",
            "price": 89.5,
            "currency": "EUR",
            "url": "https://shop.example/p",
            "image_url": "https://shop.example/p.jpg",
        }
        if cart_only:
            batch = [ev("track", "Product Added", properties=product)]
        else:
            batch = [
                ev("track", "Product Viewed", properties=product),
                ev("page", name="Home"),
                ev("track", "Product Viewed", properties={**product, "product_id": f"p{rng.randrange(500)}"}),
                ev("identify", traits={"email": f"{visitor}@example.com", "firstName": "Ann"}),
                ev("track", "Product Added", properties=product),
            ]
            if rng.random() < 0.3:
                batch.append(
                    ev(
                        "track",
                        "Order Completed",
                        properties={"order_id": visitor, "total": 89.5, "products": [product]},
                    )
                )
        out.extend((visitor_key(e.workspace_id, e.user_id, e.anonymous_id), encode(e)) for e in batch)
    return out[:n]


async def produce(topic: str, records: list[tuple[bytes, bytes]], rate: float | None = None) -> None:
    producer = AIOKafkaProducer(
        bootstrap_servers=BOOTSTRAP, linger_ms=20, max_batch_size=256 * 1024, compression_type="lz4", acks=1
    )
    await producer.start()
    try:
        started = time.perf_counter()
        futures = []
        for i, (key, value) in enumerate(records):
            futures.append(await producer.send(topic, value, key=key))
            if rate and i % 200 == 0:
                ahead = i / rate - (time.perf_counter() - started)
                if ahead > 0:
                    await asyncio.sleep(ahead)
            if len(futures) >= 10_000:
                await asyncio.gather(*futures)
                futures.clear()
        await asyncio.gather(*futures)
    finally:
        await producer.stop()


async def ceiling(topic: str, n: int) -> float:
    """A bare consumer reading the same n records, as fast as aiokafka goes."""
    consumer = AIOKafkaConsumer(
        topic,
        bootstrap_servers=BOOTSTRAP,
        group_id=f"ceiling-{uuid.uuid4().hex[:6]}",
        auto_offset_reset="earliest",
        enable_auto_commit=False,
        max_poll_records=2000,
    )
    await consumer.start()
    try:
        seen, started = 0, None
        while seen < n:
            batches = await consumer.getmany(timeout_ms=1000, max_records=2000)
            for records in batches.values():
                if started is None:
                    started = time.perf_counter()
                seen += len(records)
        return n / (time.perf_counter() - (started or time.perf_counter()))
    finally:
        await consumer.stop()


FAUST_BARE = """
import os, sys, time, tempfile
import faust, mode.loop
mode.loop.use("uvloop")
topic, n = sys.argv[1], int(sys.argv[2])
app = faust.App(
    f"{topic}-bare",  # its own topics start with the bench's prefix: deleted with the others
    broker="kafka://" + sys.argv[3], store="memory://", datadir=tempfile.mkdtemp(),
    key_serializer="raw", value_serializer="raw", web_enabled=False, autodiscover=False,
    consumer_auto_offset_reset="earliest",
)
seen, started = 0, None

@app.agent(app.topic(topic))
async def bare(stream):
    global seen, started
    async for events in stream.take_events(1000, within=0.05):  # the worker's batches
        started = started or time.perf_counter()
        seen += len(events)
        if seen >= n:
            print(n / (time.perf_counter() - started), flush=True)
            os._exit(0)

worker = faust.Worker(app, loglevel="WARNING", redirect_stdouts=False)
worker.spinner = None
worker.execute_from_commandline()
"""


def faust_ceiling(topic: str, n: int) -> float:
    """A faust agent (uvloop, the worker's batches) that does nothing with the same n records."""
    with tempfile.TemporaryDirectory() as folder:
        out = subprocess.run(
            [sys.executable, "-c", FAUST_BARE, topic, str(n), BOOTSTRAP],
            capture_output=True,
            text=True,
            timeout=900,
            cwd=folder,
        )
    try:
        return float(out.stdout.strip().splitlines()[-1])
    except (ValueError, IndexError):
        raise RuntimeError(f"the bare faust agent failed: {out.stderr[-2000:]}") from None


class Worker:
    def __init__(self, folder: Path, prefix: str, cprofile: str | None = None, **env: str) -> None:
        folder.mkdir(parents=True, exist_ok=True)
        self.port = _free_port()
        self.data = folder / "data"
        self.log = (folder / "worker.log").open("wb")
        command = [sys.executable, "-m", "retarget.segmenter"]
        if cprofile:  # the event loop's thread under cProfile, written when the worker stops
            run = "runpy.run_module('retarget.segmenter', run_name='__main__')"
            command = [sys.executable, "-c", f"import cProfile, runpy; cProfile.run({run!r}, {cprofile!r})"]
        self.process = subprocess.Popen(
            command,
            env={
                **os.environ,
                "RETARGET_TOPIC_PREFIX": prefix,
                "RETARGET_TOPIC_PARTITIONS": str(PARTITIONS),
                "RETARGET_WEB_PORT": str(self.port),
                "RETARGET_DATA_DIR": str(self.data),
                "RETARGET_LOG_LEVEL": "WARNING",
                "RETARGET_SESSION_TIMEOUT_S": "6",
                **env,
            },
            stdout=self.log,
            stderr=subprocess.STDOUT,
            cwd=folder,
        )

    def metric(self, name: str) -> float:
        text = httpx.get(f"http://127.0.0.1:{self.port}/metrics", timeout=5).text
        return sum(
            float(line.rsplit(" ", 1)[1])
            for line in text.splitlines()
            if line.startswith(name) and not line.startswith("#")
        )

    async def wait_up(self) -> None:
        for _ in range(600):
            try:
                self.metric("retarget_segmenter_events_total")
                return
            except httpx.TransportError:
                await asyncio.sleep(0.1)
        raise RuntimeError("worker did not start")

    async def drain(self, n: int, timeout_s: float = 900) -> float:
        """events/s from the first processed event to the n-th; also sets `cpu_us_per_event`, the
        worker's CPU time (all its threads) per event over the same span: unlike events/s it
        hardly depends on how much of a core the machine's other load leaves the worker."""
        first_at, first_count, first_cpu = None, 0.0, 0.0
        process = psutil.Process(self.process.pid)
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            count = await asyncio.to_thread(self.metric, "retarget_segmenter_events_total")
            if first_at is None and count > 0:
                first_at, first_count, first_cpu = time.perf_counter(), count, _cpu_s(process)
            if count >= n:
                assert first_at is not None
                self.cpu_us_per_event = (_cpu_s(process) - first_cpu) / max(1.0, count - first_count) * 1e6
                return (count - first_count) / (time.perf_counter() - first_at)
            await asyncio.sleep(0.25)
        raise RuntimeError(f"worker processed fewer than {n} events in {timeout_s}s")

    async def settle(self, quiet_s: float = 2.0, timeout_s: float = 300) -> None:
        """Until no trigger has fired for `quiet_s`: the drained carts' overdue triggers are done."""
        last, quiet_since = -1.0, time.monotonic()
        deadline = time.monotonic() + timeout_s
        while time.monotonic() < deadline:
            fired = await asyncio.to_thread(self.metric, "retarget_segmenter_triggers_fired_total")
            if fired != last:
                last, quiet_since = fired, time.monotonic()
            elif time.monotonic() - quiet_since >= quiet_s:
                return
            await asyncio.sleep(0.25)

    def rss_mib(self) -> float:
        return psutil.Process(self.process.pid).memory_info().rss / 2**20

    def disk_mib(self) -> float:
        return sum(f.stat().st_size for f in self.data.rglob("*") if f.is_file()) / 2**20

    def stop(self) -> None:
        self.process.send_signal(signal.SIGTERM)
        try:
            self.process.wait(60)
        except subprocess.TimeoutExpired:
            self.process.kill()


def _cpu_s(process: psutil.Process) -> float:
    times = process.cpu_times()
    return float(times.user + times.system)


def _free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


MADE: set[str] = set()  # this run's topic prefixes: their topics are deleted at the end


async def fresh_topics(prefix: str) -> Topics:
    MADE.add(prefix)
    topics = Topics(prefix)
    settings = CommonSettings(kafka_bootstrap=BOOTSTRAP, topic_partitions=PARTITIONS)
    await ensure_topics(settings, [*topics.all(), *internal_topics(prefix)])
    return topics


async def one_run(
    folder: Path, n: int, cprofile: str | None = None, lag_load: float = 0.7
) -> dict[str, float]:
    records = shop_events(n)
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    topics = await fresh_topics(prefix)
    await produce(topics.events, records)
    bare = await ceiling(topics.events, n)
    bare_faust = await asyncio.to_thread(faust_ceiling, topics.events, n)
    # the goal's measure: the sample campaigns as shipped (waits of hours: nothing fires meanwhile)
    shipped = Worker(folder / "shipped", prefix, cprofile)
    try:
        await shipped.wait_up()
        rate = await shipped.drain(n)
        cpu_us = shipped.cpu_us_per_event
    finally:
        shipped.stop()
    # then the same records again with 2 s waits, so every cart fires within the drain, and the
    # timer-lag phases on that worker
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    topics = await fresh_topics(prefix)
    await produce(topics.events, records)
    worker = Worker(
        folder / "firing",
        prefix,
        RETARGET_CAMPAIGN_WAITS='{"abandoned_cart": "2s"}',
        RETARGET_WAIT_SCALE="1000",
    )
    try:
        await worker.wait_up()
        firing_rate = await worker.drain(n)
        await worker.settle()  # the lag phase measures its own triggers, not the drain's backlog
        lag = await timer_lag(worker, topics, firing_rate, lag_load)
        await worker.settle()
        burst = await burst_lag(topics, n)
        return {
            "events_per_s": rate,
            "cpu_us_per_event": cpu_us,
            "firing_events_per_s": firing_rate,
            "ceiling_per_s": bare,
            "faust_ceiling_per_s": bare_faust,
            **lag,
            **burst,
        }
    finally:
        worker.stop()


async def timer_lag(
    worker: Worker, topics: Topics, drained_rate: float, load: float = 0.7, seconds: float = 20
) -> dict[str, float]:
    """Events at `load` x the drained rate for `seconds`; fired_at - due_at of the triggers that fire."""
    rate = load * drained_rate
    consumer = AIOKafkaConsumer(topics.triggers, bootstrap_servers=BOOTSTRAP, auto_offset_reset="latest")
    await consumer.start()
    await consumer.seek_to_end()
    lags: list[float] = []
    trig = decoder(TriggerFired)

    # events are stamped with their send times, so they must be built before `begin`: time a
    # small build and leave twice the extrapolated time (on a busy machine a fixed 2 s was not
    # enough, and every trigger looked ~1 s late)
    n = int(rate * seconds)
    took = time.perf_counter()
    shop_events(1000)
    took = (time.perf_counter() - took) * n / 1000
    begin = datetime.now(UTC) + timedelta(seconds=1 + 2 * took)
    events = shop_events(n, start=begin, rate=rate)
    late = (datetime.now(UTC) - begin).total_seconds()
    if late > 0:
        print(f"warning: the events were built {late:.2f} s after the times they carry", flush=True)

    async def read() -> None:
        async for record in consumer:
            t = trig.decode(record.value)
            if t.due_at >= begin:  # not the drained carts' triggers, due before this phase
                lags.append((t.fired_at - t.due_at).total_seconds())

    reader = asyncio.create_task(read())
    await asyncio.sleep(max(0.0, (begin - datetime.now(UTC)).total_seconds()))
    before = await asyncio.to_thread(worker.metric, "retarget_segmenter_events_total")
    started = time.perf_counter()
    await produce(topics.events, events, rate=rate)
    offered = (await asyncio.to_thread(worker.metric, "retarget_segmenter_events_total") - before) / (
        time.perf_counter() - started
    )
    await asyncio.sleep(4)  # the last carts' 2 s waits
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await consumer.stop()
    lags.sort()
    if not lags:
        return {"lag_p50_s": float("nan"), "lag_p99_s": float("nan"), "triggers": 0, "load_per_s": offered}
    return {
        "lag_p50_s": lags[len(lags) // 2],
        "lag_p99_s": lags[min(len(lags) - 1, int(len(lags) * 0.99))],
        "triggers": len(lags),
        "load_per_s": offered,
    }


async def burst_lag(topics: Topics, n: int, wait_s: float = 2.0) -> dict[str, float]:
    """Carts read while the worker is idle, then n events at once, arriving just before the
    carts are due: fired_at - due_at of the carts' triggers while the worker works the burst."""
    burst = shop_events(n)  # built first: their own carts are overdue, more work for the worker
    carts = shop_events(3000)
    cart_keys = {key for key, _ in carts}
    consumer = AIOKafkaConsumer(topics.triggers, bootstrap_servers=BOOTSTRAP, auto_offset_reset="latest")
    await consumer.start()
    await consumer.seek_to_end()
    lags: list[float] = []
    trig = decoder(TriggerFired)

    async def read() -> None:
        async for record in consumer:
            if record.key in cart_keys:
                t = trig.decode(record.value)
                lags.append((t.fired_at - t.due_at).total_seconds())

    reader = asyncio.create_task(read())
    await produce(topics.events, carts)
    await asyncio.sleep(wait_s / 2)
    started = time.perf_counter()
    await produce(topics.events, burst)
    seen = -1
    while len(lags) != seen or not lags:  # until no trigger arrived for 3 s
        seen = len(lags)
        await asyncio.sleep(3)
        if time.perf_counter() - started > 600:
            break
    reader.cancel()
    await asyncio.gather(reader, return_exceptions=True)
    await consumer.stop()
    lags.sort()
    if not lags:
        return {"burst_p50_s": float("nan"), "burst_p99_s": float("nan"), "burst_triggers": 0}
    return {
        "burst_p50_s": lags[len(lags) // 2],
        "burst_p99_s": lags[min(len(lags) - 1, int(len(lags) * 0.99))],
        "burst_triggers": len(lags),
    }


async def size_run(folder: Path, profiles: int) -> dict[str, float]:
    prefix = f"bench{uuid.uuid4().hex[:8]}"
    topics = await fresh_topics(prefix)
    await produce(topics.events, shop_events(profiles, cart_only=True))
    worker = Worker(folder, prefix)  # production waits (4 h): every profile keeps a due entry
    try:
        await worker.wait_up()
        rate = await worker.drain(profiles)
        await asyncio.sleep(6)  # a few timer and commit intervals
        return {
            "profiles": profiles,
            "rss_mib": worker.rss_mib(),
            "disk_mib": worker.disk_mib(),
            "rate": rate,
        }
    finally:
        worker.stop()


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--profiles", type=int, default=200_000)
    parser.add_argument("--lag-load", type=float, default=0.7, help="timer-lag load, x the drained rate")
    parser.add_argument("--cprofile", help="write a cProfile of the first run's worker to this file")
    args = parser.parse_args()
    root = Path(tempfile.mkdtemp(prefix="bench-segmenter-"))
    try:
        results = []
        for i in range(args.runs):
            r = await one_run(root / f"run{i}", args.events, args.cprofile if i == 0 else None, args.lag_load)
            results.append(r)
            print(
                f"run {i + 1}: {r['events_per_s']:,.0f} events/s, worker CPU {r['cpu_us_per_event']:.1f} µs an event "
                f"({r['firing_events_per_s']:,.0f}/s with every "
                f"cart firing within the drain) (ceilings: aiokafka {r['ceiling_per_s']:,.0f}/s, "
                f"{r['events_per_s'] / r['ceiling_per_s']:.1%}; a bare faust agent "
                f"{r['faust_ceiling_per_s']:,.0f}/s, {r['events_per_s'] / r['faust_ceiling_per_s']:.0%}); "
                f"timer lag p50 {r['lag_p50_s']:.2f} s "
                f"p99 {r['lag_p99_s']:.2f} s over {r['triggers']:.0f} triggers at {r['load_per_s']:,.0f} events/s; "
                f"during a burst of {args.events:,} events: p50 {r['burst_p50_s']:.2f} s p99 {r['burst_p99_s']:.2f} s "
                f"over {r['burst_triggers']:.0f} triggers",
                flush=True,
            )
        med = {k: statistics.median(r[k] for r in results) for k in results[0]}
        print(
            f"median of {args.runs}: {med['events_per_s']:,.0f} events/s, {med['cpu_us_per_event']:.1f} µs CPU an "
            f"event ({med['firing_events_per_s']:,.0f}/s with "
            f"every cart firing) vs ceilings: aiokafka "
            f"{med['ceiling_per_s']:,.0f}/s, a bare faust agent {med['faust_ceiling_per_s']:,.0f}/s; "
            f"timer lag p99 {med['lag_p99_s']:.2f} s at {med['load_per_s']:,.0f} events/s, "
            f"{med['burst_p99_s']:.2f} s during a burst",
            flush=True,
        )
        s = await size_run(root / "size", args.profiles)
        scale = 1_000_000 / s["profiles"]
        print(
            f"size: {s['profiles']:,.0f} profiles -> RSS {s['rss_mib']:,.0f} MiB, disk {s['disk_mib']:,.0f} MiB "
            f"(drained at {s['rate']:,.0f}/s); disk linear to 1M: ~{s['disk_mib'] * scale:,.0f} MiB",
            flush=True,
        )
    finally:
        shutil.rmtree(root, ignore_errors=True)
        await delete_topics_with_prefixes(BOOTSTRAP, MADE)


if __name__ == "__main__":
    asyncio.run(main())
