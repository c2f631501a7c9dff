"""Limits across sender processes: (a) a share per process vs (b) a shared budget in PostgreSQL.

N workers (asyncio tasks, each with its own PostgreSQL connection for (b)) send one domain's
backlog as fast as the limit lets them and note when each message would go out:

(a) each worker has the sender's RateLimiter at share 1/N (limit_share.py) — no I/O;
(b) each worker leases tokens from one token-bucket row in PostgreSQL, CHUNK at a time
    (`UPDATE … RETURNING`, the bucket refilled in SQL from clock_timestamp()), waits until the
    lease is due and sends the chunk.

Reported per variant: the achieved rate against the limit, the most messages in any window
against what the limit allows (burst + rate × window), and the cost per message (this
process's CPU, and for (b) the PostgreSQL round trips). Then, for (a), what the hash spread
costs a small volume: the time to send n messages of one domain queued at once, over the time
one process with the whole limit would take (Monte Carlo over the partition each recipient
hashes to).

    .venv/bin/python bench/bench_rate_share.py [--workers 3] [--rate 200] [--burst 20] [--seconds 10]

Needs the local stack's PostgreSQL for (b) (a scratch table, dropped afterwards).
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import statistics
import time
import uuid

import asyncpg

from retarget.common.settings import CommonSettings
from retarget.common.testing import most_in_any_window
from retarget.sender.limit_share import LimitShare, scaled
from retarget.sender.policy import Rate
from retarget.sender.ratelimit import RateLimiter

UNLIMITED = Rate(0, 0)


async def shares(args: argparse.Namespace) -> tuple[list[float], float]:
    stop = asyncio.Event()
    sent: list[float] = []
    deadline = time.monotonic() + args.seconds

    async def worker() -> None:
        limiter = RateLimiter(
            domain_default=Rate(args.rate, args.burst),
            domain_overrides={},
            workspace_default=UNLIMITED,
            global_rate=UNLIMITED,
        )
        limiter.use_share(LimitShare(1, args.workers).fraction)
        while time.monotonic() < deadline:
            await limiter.acquire("gmail.com", "ws", None, stop)
            sent.append(time.monotonic())

    cpu = time.process_time()
    await asyncio.gather(*(worker() for _ in range(args.workers)))
    return sent, (time.process_time() - cpu) / max(len(sent), 1)


_LEASE = """
UPDATE {table}
SET level = LEAST($1::float8, level + (extract(epoch FROM clock_timestamp()) - updated) * $2::float8) - $3::float8,
    updated = extract(epoch FROM clock_timestamp())
WHERE key = 'gmail.com'
RETURNING level
"""


async def shared_budget(args: argparse.Namespace, chunk: int) -> tuple[list[float], float, float]:
    url = CommonSettings.model_validate({}).database_url
    table = f"bench_rate_budget_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(url)
    await admin.execute(f"CREATE TABLE {table} (key text PRIMARY KEY, level float8, updated float8)")
    await admin.execute(
        f"INSERT INTO {table} VALUES ('gmail.com', $1, extract(epoch FROM clock_timestamp()))",
        float(args.burst),
    )
    sent: list[float] = []
    lease_seconds: list[float] = []
    deadline = time.monotonic() + args.seconds

    async def worker() -> None:
        conn = await asyncpg.connect(url)
        try:
            while time.monotonic() < deadline:
                started = time.monotonic()
                level = await conn.fetchval(_LEASE.format(table=table), float(args.burst), args.rate, chunk)
                lease_seconds.append(time.monotonic() - started)
                if level < 0:  # reserved: the chunk's last token is due then
                    await asyncio.sleep(-level / args.rate)
                sent.extend([time.monotonic()] * chunk)
        finally:
            await conn.close()

    cpu = time.process_time()
    try:
        await asyncio.gather(*(worker() for _ in range(args.workers)))
    finally:
        await admin.execute(f"DROP TABLE {table}")
        await admin.close()
    per_message = (time.process_time() - cpu) / max(len(sent), 1)
    return sent, per_message, statistics.median(lease_seconds)


def report(
    name: str, args: argparse.Namespace, sent: list[float], cpu_per_message: float, extra: str = ""
) -> None:
    rate = len(sent) / (max(sent) - min(sent)) if len(sent) > 1 else 0.0
    windows = (0.1, 1.0)
    worst = ", ".join(
        f"{w:g}s {most_in_any_window(sent, w)}/{args.burst + args.rate * w:.0f}" for w in windows
    )
    print(
        f"{name:34} {rate:7.1f}/s of {args.rate:g} ({rate / args.rate:5.1%})  most in a window (seen/allowed) "
        f"{worst}  CPU {cpu_per_message * 1e6:6.1f} µs/msg{extra}"
    )


def spread_cost(
    args: argparse.Namespace, n: int, partitions: int, trials: int = 2000
) -> tuple[float, float, float]:
    """(a) with a queue of n messages of one domain: the ideal drain time (one bucket with the
    whole limit), and the p50 and p99 of how much longer the shares take (seconds)."""
    rng = random.Random(n)
    owners = [p % args.workers for p in range(partitions)]  # round-robin, as the assignors do
    share = {w: owners.count(w) / partitions for w in range(args.workers)}
    extra = []
    for _ in range(trials):
        counts = [0] * args.workers
        for _ in range(n):
            counts[owners[rng.randrange(partitions)]] += 1
        ideal = max(n - args.burst, 0) / args.rate
        worst = max(
            max(c - scaled(Rate(args.rate, args.burst), share[w]).burst, 0) / (args.rate * share[w])
            for w, c in enumerate(counts)
        )
        extra.append(worst - ideal)
    extra.sort()
    return max(n - args.burst, 0) / args.rate, extra[len(extra) // 2], extra[int(len(extra) * 0.99)]


async def main(args: argparse.Namespace) -> None:
    print(f"{args.workers} workers, limit {args.rate:g}/s burst {args.burst}, {args.seconds:g} s each")
    print(f"(load average {os.getloadavg()[0]:.1f})")
    sent, cpu = await shares(args)
    report("(a) share per process", args, sent, cpu)
    for chunk in (1, 10):
        sent, cpu, lease = await shared_budget(args, chunk)
        report(
            f"(b) PostgreSQL budget, chunk {chunk}",
            args,
            sent,
            cpu,
            f", lease round trip p50 {lease * 1e3:.1f} ms",
        )
    print(
        f"\n(a) spread over {args.partitions} partitions: time to send n queued messages / ideal (p50, p99)"
    )
    for n in (20, 100, 1000, 10_000):
        p50, p99 = spread_cost(args, n, args.partitions, trials=200 if n >= 10_000 else 2000)
        print(f"  n={n:6}: {p50:.2f} {p99:.2f}")


if __name__ == "__main__":
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--workers", type=int, default=3)
    parser.add_argument("--rate", type=float, default=200.0)
    parser.add_argument("--burst", type=int, default=20)
    parser.add_argument("--seconds", type=float, default=10.0)
    parser.add_argument("--partitions", type=int, default=12)
    asyncio.run(main(parser.parse_args()))
