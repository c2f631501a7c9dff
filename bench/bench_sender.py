"""Sender throughput: outbound topic → suppression, caps, send log, DKIM → smtp-sink.

Every run pre-loads N rendered messages (distinct recipients over 50 domains) into a fresh
outbound topic, starts the real sender (bootstrap: real Kafka, PostgreSQL, aiosmtplib pool)
with DKIM on for a workspace with an ed25519 or RSA-2048 selector, default caps, the batched
suppression look-up and the send-log claim, and times the first to the last recorded
outcome (send_log timestamps, so consumer-group start-up is not counted). The ceiling is
Postfix's smtp-source into the same smtp-sink in the same run. Medians of --runs runs.

    .venv/bin/python bench/bench_sender.py [--messages 10000] [--runs 3] [--connections 50] [--processes 1]
        [--domains 50] [--partitions 4]

--domains 1 sends every message to gmail.com: the outbound key (the address digest) spreads
even one domain over every partition, so every process works (#19). The per-domain rate is
set so the domains together allow 50,000 msg/s: on, never the bottleneck.

--processes 1 runs the sender in this process; N > 1 starts N `python -m retarget.sender`
processes in one consumer group (each with --connections), waits until the group has
settled, and only then produces the messages, so a rebalance is not part of the timing.

Needs the local stack (`retarget devstack up`, `retarget db migrate`) and Postfix's tools.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import statistics
import subprocess
import sys
import tempfile
import time
import uuid
from datetime import UTC, datetime
from pathlib import Path

import asyncpg
from aiokafka.admin import AIOKafkaAdminClient
from cryptography.hazmat.primitives.asymmetric import ed25519, rsa
from cryptography.hazmat.primitives.serialization import Encoding, NoEncryption, PrivateFormat

from retarget.common.kafka import delete_topics_with_prefixes, ensure_topics, make_producer
from retarget.common.logging import configure_logging
from retarget.common.schemas import OutboundMessage, encode
from retarget.common.topics import Topics, recipient_key
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.sender.bootstrap import bootstrap
from retarget.sender.local_mta import SmtpSink, free_port, smtp_source
from retarget.sender.settings import SenderSettings

BODY = "Your cart is waiting.\r\n" * 40  # ~1 KB, like a short rendered text part


def _write_key(folder: Path, algorithm: str) -> None:
    key = (
        ed25519.Ed25519PrivateKey.generate()
        if algorithm == "ed25519"
        else rsa.generate_private_key(public_exponent=65537, key_size=2048)
    )
    pem = key.private_bytes(Encoding.PEM, PrivateFormat.PKCS8, NoEncryption())
    (folder / f"shop.example.b1.{algorithm}.pem").write_bytes(pem)


def _message(workspace_id: str, n: int, domains: int) -> OutboundMessage:
    message_id = f"m-{uuid.uuid4().hex}"
    recipient = f"r{n}@gmail.com" if domains == 1 else f"r{n}@d{n % domains}.bench.example"
    raw = (
        f"From: Shop <news@shop.example>\r\nTo: {recipient}\r\nSubject: You left something\r\n"
        f"Date: Mon, 05 Jan 2026 12:00:00 +0000\r\nMessage-ID: <{message_id}@shop.example>\r\n"
        "MIME-Version: 1.0\r\nContent-Type: text/plain; charset=utf-8\r\n"
        "List-Unsubscribe: <https://t.shop.example/u/x>\r\nList-Unsubscribe-Post: List-Unsubscribe=One-Click\r\n"
        f"\r\n{BODY}"
    )
    return OutboundMessage(
        message_id=message_id,
        trigger_id=uuid.uuid4().hex,
        workspace_id=workspace_id,
        profile_id=f"p{n}",
        campaign="cart",
        recipient=recipient,
        mail_from="bounces@shop.example",
        raw=raw,
        created_at=datetime.now(UTC),
    )


async def one_run(args: argparse.Namespace, algorithm: str, sink_port: int) -> float:
    workspace_id, prefix = f"bench-{uuid.uuid4().hex[:8]}", f"bench{uuid.uuid4().hex[:8]}"
    keys_folder = tempfile.TemporaryDirectory(prefix="retarget-bench-keys-")
    keys = Path(keys_folder.name)
    _write_key(keys, algorithm)
    values = {
        "topic_prefix": prefix,
        "topic_partitions": args.partitions,
        "smtp_url": f"smtp://127.0.0.1:{sink_port}",
        "environment": "development",  # smtp-sink speaks no TLS; production refuses plain smtp://
        "smtp_connections": args.connections,
        "batch_size": args.batch,
        "sender_group": f"sender-{prefix}",
        "dkim_keys_dir": keys,
        "rate_domain": f"{50_000 // args.domains}/{50_000 // args.domains}",  # on, not the bottleneck
        "log_level": "WARNING",
    }
    settings = SenderSettings.model_validate(values)
    conn = await asyncpg.connect(settings.database_url)
    await WorkspaceStore(conn).upsert(
        Workspace(workspace_id, "Bench", "Shop", "news@shop.example", "1 Main St", dkim_selector="b1")
    )
    topics = Topics(prefix)
    await ensure_topics(settings, [topics.outbound, topics.deliveries, topics.dead_letter])
    processes: list[subprocess.Popen[bytes]] = []
    if args.processes > 1:
        processes = _start_senders(args.processes, values)
        await _wait_for_group(settings, args.processes, processes)
    producer = make_producer(settings, linger_ms=20, max_batch_size=256 * 1024)
    await producer.start()
    for n in range(args.messages):
        m = _message(workspace_id, n, args.domains)
        await producer.send(topics.outbound, encode(m), key=recipient_key(m.recipient))
    await producer.flush()
    await producer.stop()

    sender = bootstrap(settings) if not processes else None
    stop = asyncio.Event()
    task: asyncio.Task[None] | None = None
    try:
        if sender is not None:
            await sender.start()
            task = asyncio.create_task(sender.run(stop))
        while True:
            done = await conn.fetchval(
                "SELECT count(*) FROM send_log WHERE workspace_id = $1 AND state <> 'claimed'", workspace_id
            )
            if done >= args.messages:
                break
            if task is not None and task.done():
                task.result()
            if any(p.poll() is not None for p in processes):
                raise SystemExit("a sender process exited early")
            await asyncio.sleep(0.25)
        states = await conn.fetch(
            "SELECT state, last_reason, count(*) FROM send_log WHERE workspace_id = $1 GROUP BY 1, 2",
            workspace_id,
        )
        first, last, sent = await conn.fetchrow(
            "SELECT min(created_at), max(updated_at), count(*) FILTER (WHERE state = 'sent') "
            "FROM send_log WHERE workspace_id = $1",
            workspace_id,
        )
    finally:
        stop.set()
        if task is not None:
            await task
        if sender is not None:
            await sender.close()
        for p in processes:
            p.terminate()
        for p in processes:
            p.wait(30)
        await conn.execute("DELETE FROM send_log WHERE workspace_id = $1", workspace_id)
        await conn.execute("DELETE FROM workspaces WHERE id = $1", workspace_id)
        await conn.close()
        keys_folder.cleanup()
        await delete_topics_with_prefixes(settings.kafka_bootstrap, [prefix])
    if sent != args.messages:
        summary = ", ".join(f"{r['state']}/{r['last_reason']}: {r['count']}" for r in states)
        raise SystemExit(f"only {sent} of {args.messages} messages were sent ({summary})")
    return args.messages / (last - first).total_seconds()


def _start_senders(count: int, values: dict[str, object]) -> list[subprocess.Popen[bytes]]:
    env = {**os.environ, **{f"RETARGET_{k.upper()}": str(v) for k, v in values.items()}}
    return [
        subprocess.Popen(
            [sys.executable, "-m", "retarget.sender"], env={**env, "RETARGET_OPS_PORT": str(free_port())}
        )
        for _ in range(count)
    ]


async def _wait_for_group(
    settings: SenderSettings, members: int, processes: list[subprocess.Popen[bytes]]
) -> None:
    """Until the consumer group is Stable with every process in it (or a minute passed)."""
    admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
    await admin.start()
    try:
        for _ in range(240):
            if any(p.poll() is not None for p in processes):
                raise SystemExit("a sender process exited while joining its group")
            [response] = await admin.describe_consumer_groups([settings.sender_group])
            group = response.groups[0]  # (error, id, state, protocol type, protocol, members, ...)
            if group[2] == "Stable" and len(group[5]) == members:
                return
            await asyncio.sleep(0.25)
        raise SystemExit(f"the sender group did not settle with {members} members")
    finally:
        await admin.close()


async def main(args: argparse.Namespace) -> None:
    configure_logging("bench", "WARNING")
    sink = SmtpSink(backlog=1024)
    try:
        algorithms = args.algorithms.split(",")
        results: dict[str, list[float]] = {"smtp-source": [], **{a: [] for a in algorithms}}
        for run in range(args.runs):
            results["smtp-source"].append(
                await asyncio.to_thread(
                    smtp_source, sink.port, messages=20_000, sessions=args.connections * args.processes
                )
            )
            for algorithm in algorithms:
                results[algorithm].append(await one_run(args, algorithm, sink.port))
            print(
                f"run {run + 1}: "
                + ", ".join(f"{k} {v[-1]:,.0f}/s" for k, v in results.items())
                + f" (load average {os.getloadavg()[0]:.1f})",
                flush=True,
            )
    finally:
        sink.stop()
    ceiling = statistics.median(results["smtp-source"])
    print(
        f"\nmedian of {args.runs} runs, {args.messages} messages each to {args.domains} domain(s) over "
        f"{args.partitions} partitions, {args.processes} sender process(es) with {args.connections} connections each:"
    )
    print(f"  ceiling  smtp-source -> smtp-sink     {ceiling:10,.0f} msg/s")
    for algorithm in algorithms:
        rate = statistics.median(results[algorithm])
        print(
            f"  sender   DKIM {algorithm:8} -> smtp-sink {rate:10,.0f} msg/s  ({rate / ceiling:.1%} of the ceiling)"
        )


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--messages", type=int, default=10_000)
    parser.add_argument("--runs", type=int, default=3)
    parser.add_argument("--connections", type=int, default=50)
    parser.add_argument("--batch", type=int, default=500)
    parser.add_argument("--processes", type=int, default=1)
    parser.add_argument("--domains", type=int, default=50, help="recipient domains; 1: gmail.com only")
    parser.add_argument("--partitions", type=int, default=4, help="of the outbound topic")
    parser.add_argument("--algorithms", default="ed25519,rsa", help="comma separated: ed25519, rsa")
    started = time.perf_counter()
    try:
        import uvloop

        uvloop.run(main(parser.parse_args()))
    except ImportError:
        asyncio.run(main(parser.parse_args()))
    print(f"  ({time.perf_counter() - started:.0f} s in all)")
