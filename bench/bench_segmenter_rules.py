"""The segmenter's own per-event work, without Kafka or faust: what a worker could do if
reading records and writing tables cost nothing — beside a ceiling measured in the same run,
decoding the same records and nothing else.

    .venv/bin/python bench/bench_segmenter_rules.py [--events 60000] [--runs 5]

The records are bench_segmenter.py's shop mix (views, a page, an identify, a cart add,
sometimes an order per visitor). A real `ProfileProcessor` with the sample campaigns handles
them in order against dict tables — identity, rules, profile (de)serialisation, due
entries, metrics — with sends that return at once. One core; medians over the runs.
Why it exists: it separates the worker's own cost from faust's (bench_segmenter.py's
worker runs ~5k events/s; a bare faust agent reads ~14k/s).
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time

from bench_segmenter import shop_events

from retarget.common.clock import SystemClock
from retarget.common.schemas import TrackedEvent, decoder
from retarget.segmenter.app import campaigns_from
from retarget.segmenter.processor import ProfileProcessor
from retarget.segmenter.schedule import DueSchedule
from retarget.segmenter.settings import SegmenterSettings


async def nothing(output: str, key: bytes, value: bytes, wait: bool, partition: int | None = None) -> None:
    return None


async def rules(records: list[tuple[bytes, bytes]]) -> float:
    settings = SegmenterSettings(campaign_waits={"abandoned_cart": "2s"})
    processor = ProfileProcessor(
        profiles={},
        due={},
        send=nothing,
        campaigns=campaigns_from(settings),
        clock=SystemClock(),
        schedule=DueSchedule(),
    )
    started = time.perf_counter()
    for key, value in records:
        await processor.on_event(key, value)
    return len(records) / (time.perf_counter() - started)


def decode_only(records: list[tuple[bytes, bytes]]) -> float:
    decode = decoder(TrackedEvent).decode
    started = time.perf_counter()
    for _, value in records:
        decode(value)
    return len(records) / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--runs", type=int, default=5)
    args = parser.parse_args()
    records = shop_events(args.events)
    results = []
    for i in range(args.runs):
        rate, ceiling = await rules(records), decode_only(records)
        results.append((rate, ceiling))
        print(
            f"run {i + 1}: {rate:,.0f} events/s ({1e6 / rate:.1f} µs an event); "
            f"ceiling (decode only) {ceiling:,.0f}/s; {rate / ceiling:.0%}",
            flush=True,
        )
    rate = statistics.median(r for r, _ in results)
    ceiling = statistics.median(c for _, c in results)
    print(
        f"median of {args.runs}: {rate:,.0f} events/s ({1e6 / rate:.1f} µs an event) vs ceiling {ceiling:,.0f}/s"
    )


if __name__ == "__main__":
    asyncio.run(main())
