"""Erasure by address without an index: how long a partition's scan takes, beside its ceiling.

    .venv/bin/python bench/bench_segmenter_erasure_scan.py [--profiles 200000] [--runs 5]

Writes P realistic profiles (address, name, cart, viewed products, pending wait, message
ids) into a RocksDB database opened the way faust opens a partition's store (rocksdict,
raw mode), then times `profiles_with_address` over it — what one partition's owner does
for an `EraseByEmail` step, or a worker for GET /emails/... Ceiling in the same run: the
bare iteration over the same database, touching every record and doing nothing else.
Medians over the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import tempfile
import time
from datetime import UTC, datetime, timedelta

import msgspec
from rocksdict import Options, Rdict

from retarget.common.identity import email_digest
from retarget.common.schemas import CartLine
from retarget.segmenter.erasure import profiles_with_address
from retarget.segmenter.state import CartItem, Pending, Profile, Viewed

WS = "bench"


def profile(i: int) -> Profile:
    at = datetime(2026, 3, 1, tzinfo=UTC) + timedelta(seconds=i)
    line = CartLine(product_id=f"p{i % 500}", name="Trail Boot", price=89.5, currency="EUR")
    return Profile(
        workspace_id=WS,
        profile_id=f"visitor-{i:08d}",
        email=f"visitor-{i}@example.com" if i % 3 else None,  # a third never gave an address
        first_name="Ann",
        cart={line.product_id: CartItem(line=line, added_at=at)},
        viewed=[
            Viewed(product_id=f"p{(i + k) % 500}", at=at, name="Trail Boot", price=89.5) for k in range(3)
        ],
        pending={
            "abandoned_cart": Pending(
                campaign="abandoned_cart",
                due_at=at + timedelta(hours=4),
                entry_message_id=f"m{i}",
                entry_at=at,
                started_at=at,
            )
        },
        recent_message_ids=[f"{i}-{k:032d}" for k in range(5)],
    )


def fill(path: str, n: int) -> Rdict:
    db = Rdict(path, Options(raw_mode=True))
    for i in range(n):
        db[f"{WS}:visitor-{i:08d}".encode()] = msgspec.json.encode(profile(i))
    return db


def bare(db: Rdict) -> float:
    started = time.perf_counter()
    total = 0
    for _, value in db.items():
        total += len(value)
    return time.perf_counter() - started


def scan(db: Rdict, address: str) -> float:
    started = time.perf_counter()
    found = asyncio.run(profiles_with_address(db.items(), WS, email_digest(address)))
    elapsed = time.perf_counter() - started
    assert len(found) == 1
    return elapsed


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--profiles", type=int, default=200_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as folder:
        db = fill(f"{folder}/profiles-0.db", args.profiles)
        address = f"visitor-{args.profiles // 2 + 1}@example.com"
        ceilings, scans = [], []
        for run in range(1, args.runs + 1):
            ceilings.append(bare(db))
            scans.append(scan(db, address))
            print(f"run {run}: scan {scans[-1]:.3f} s, bare iteration {ceilings[-1]:.3f} s")
        db.close()
    n = args.profiles
    s, c = statistics.median(scans), statistics.median(ceilings)
    print(
        f"median of {args.runs}: scan {s:.3f} s = {n / s:,.0f} profiles/s "
        f"(ceiling: bare iteration {c:.3f} s = {n / c:,.0f}/s); ~{1_000_000 / n * s:.1f} s per million profiles"
    )


if __name__ == "__main__":
    main()
