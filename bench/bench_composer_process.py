"""The composer's CPU per email as a process, the way the pipeline runs it (issue #19).

bench_composer.py times composing in-process (~0.33 ms a message); inside bench_pipeline.py the
composer process spent ~1.5 ms of CPU per email. This harness measures the process alone: a
fresh topic prefix and workspace on the local stack, one `python -m retarget.composer`, then
--count abandoned-cart triggers (the bundled campaign's incentive, so each stores a unique
coupon in PostgreSQL) produced onto its triggers topic at --rate per second (0: all at once,
a backlog), and the composer's CPU seconds (psutil, user + system, from its first trigger to
its last outbound record) divided by the messages it wrote. With --profile FILE, py-spy
records the composer meanwhile (speedscope format; `--idle` adds idle samples).

Usage: .venv/bin/python bench/bench_composer_process.py [--count 20000] [--rate 500] [--profile /tmp/composer.json]
"""

from __future__ import annotations

import argparse
import asyncio
import os
import secrets
import subprocess
import tempfile
import time
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
import httpx
import psutil
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition

from retarget.common.kafka import delete_topics_with_prefixes, ensure_topics
from retarget.common.schemas import CartLine, Recipient, TriggerFired, encode
from retarget.common.settings import CommonSettings
from retarget.common.topics import Topics, profile_key
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.config.defaults import bundled_campaigns
from retarget.devstack.child import free_port, start_child
from retarget.devstack.env import stack_env


def trigger(workspace_id: str, n: int, incentive: dict[str, object]) -> TriggerFired:
    """Like the segmenter's: a visitor's cart of two products, due now."""
    now = datetime.now(UTC)
    return TriggerFired(
        trigger_id=secrets.token_hex(16),
        workspace_id=workspace_id,
        profile_id=f"anon-{n}",
        campaign="abandoned_cart",
        template="abandoned_cart",
        reason="Product Added and no Order Completed, waited 5s",
        entry_message_id=f"m-{n}",
        due_at=now,
        fired_at=now,
        recipient=Recipient(email=f"visitor{n}@example.com", first_name="Ann", locale="en"),
        cart=[
            CartLine(product_id="p1", name="Boots", price=89.5, currency="EUR", quantity=1),
            CartLine(product_id="p2", name="Socks", price=9.0, currency="EUR", quantity=2),
        ],
        incentive=dict(incentive),
    )


def start_py_spy(pid: int, out: str, *, idle: bool) -> subprocess.Popen[bytes]:
    """py-spy (a dev dependency) sampling the composer 50 times a second until SIGINT."""
    argv = [".venv/bin/py-spy", "record", "-p", str(pid), "-r", "50", "-o", out, "--format", "speedscope"]
    argv += ["--nonblocking", *(["--idle"] if idle else [])]
    return subprocess.Popen(argv, stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)


async def batch_count(port: int) -> float:
    """Batches the composer's stage handled (its retarget_stage_batch_seconds count)."""
    async with httpx.AsyncClient() as http:
        text = (await http.get(f"http://127.0.0.1:{port}/metrics")).text
    counts = [
        line.split()[-1]
        for line in text.splitlines()
        if line.startswith("retarget_stage_batch_seconds_count")
    ]
    return float(counts[0]) if counts else 0.0


async def outbound_count(consumer: AIOKafkaConsumer, parts: list[TopicPartition]) -> int:
    return sum((await consumer.end_offsets(parts)).values())


async def run(args: argparse.Namespace) -> None:
    stack = stack_env()
    prefix = f"benchcomp{secrets.token_hex(3)}"
    workspace_id = f"benchcomp-{secrets.token_hex(4)}"  # its own kind of name: others are bench-*
    settings = CommonSettings(
        kafka_bootstrap=stack["RETARGET_KAFKA_BOOTSTRAP"],
        database_url=stack["RETARGET_DATABASE_URL"],
        topic_prefix=prefix,
    )
    topics = Topics(prefix)
    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    await WorkspaceStore(conn).upsert(
        Workspace(workspace_id, "Bench Shop", "Bench Shop", "news@shop.example", "1 Main St")
    )
    await ensure_topics(settings, topics.all())
    folder = Path(tempfile.mkdtemp(prefix="bench-composer-"))
    port = free_port()
    env = {
        **stack,
        "RETARGET_TOPIC_PREFIX": prefix,
        "RETARGET_LINK_SECRET": secrets.token_hex(16),
        "RETARGET_LOG_LEVEL": "WARNING",
        "RETARGET_OPS_PORT": str(port),
    }
    child = start_child(
        "composer", "retarget.composer", env=env, port=port, log=folder / "composer.log", cwd=folder
    )
    producer = AIOKafkaProducer(bootstrap_servers=stack["RETARGET_KAFKA_BOOTSTRAP"], linger_ms=20)
    consumer = AIOKafkaConsumer(bootstrap_servers=stack["RETARGET_KAFKA_BOOTSTRAP"])
    spy: subprocess.Popen[bytes] | None = None
    try:
        async with httpx.AsyncClient() as http:
            deadline = time.monotonic() + 120
            while True:
                try:
                    if (await http.get(f"http://127.0.0.1:{port}/readyz")).status_code == 200:
                        break
                except httpx.HTTPError:
                    pass
                if time.monotonic() > deadline or child.process.poll() is not None:
                    raise SystemExit(f"composer not ready; see {folder / 'composer.log'}")
                await asyncio.sleep(0.5)
        print("composer ready", flush=True)
        await producer.start()
        await consumer.start()
        parts = [TopicPartition(topics.outbound, p) for p in range(settings.topic_partitions)]
        incentive = bundled_campaigns()["abandoned_cart"]["incentive"]
        process = psutil.Process(child.process.pid)
        cpu_before = sum(process.cpu_times()[:2])
        started = time.monotonic()
        if args.profile:
            spy = start_py_spy(child.process.pid, args.profile, idle=args.idle)
        step = max(1, args.rate // 10) if args.rate else args.count
        for first in range(0, args.count, step):
            for n in range(first, min(first + step, args.count)):
                t = trigger(workspace_id, n, incentive)
                await producer.send(topics.triggers, encode(t), key=profile_key(workspace_id, t.profile_id))
            await producer.flush()
            if args.rate:
                await asyncio.sleep(max(0.0, started + (first + step) / args.rate - time.monotonic()))
        print(f"produced {args.count:,} triggers", flush=True)
        deadline = time.monotonic() + args.timeout
        while (done := await outbound_count(consumer, parts)) < args.count:
            if time.monotonic() > deadline:
                raise SystemExit(f"only {done} of {args.count} outbound after {args.timeout}s")
            await asyncio.sleep(0.2)
        wall = time.monotonic() - started
        cpu = sum(process.cpu_times()[:2]) - cpu_before
        load = os.getloadavg()
        batches = await batch_count(port)
        print(
            f"composer: {done:,} emails in {wall:.1f} s ({done / wall:,.0f}/s), CPU {cpu:.2f} s = "
            f"{cpu / done * 1e6:,.0f} us/email ({done / cpu:,.0f} emails/s per core); "
            f"rate {args.rate or 'backlog'}; {batches:,.0f} batches ({done / max(batches, 1):,.0f} records each); "
            f"load {load[0]:.1f}"
        )
    finally:
        if spy is not None:
            spy.send_signal(2)  # py-spy writes its file on SIGINT
            spy.wait(60)
        child.process.terminate()
        child.process.wait(30)
        await producer.stop()
        await consumer.stop()
        await delete_topics_with_prefixes(stack["RETARGET_KAFKA_BOOTSTRAP"], [prefix])
        await conn.execute("DELETE FROM coupons WHERE workspace_id = $1", workspace_id)
        await conn.execute("DELETE FROM workspaces WHERE id = $1", workspace_id)
        await conn.close()


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--count", type=int, default=20_000)
    parser.add_argument("--rate", type=int, default=500, help="triggers/s produced; 0: all at once")
    parser.add_argument("--timeout", type=float, default=600)
    parser.add_argument("--profile", help="py-spy speedscope output file")
    parser.add_argument("--idle", action="store_true", help="py-spy: include idle samples")
    asyncio.run(run(parser.parse_args()))


if __name__ == "__main__":
    main()
