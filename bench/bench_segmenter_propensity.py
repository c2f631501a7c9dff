"""What the propensity model costs the segmenter: per trigger, and in events/s, on vs off.

    .venv/bin/python bench/bench_segmenter_propensity.py [--events 60000] [--runs 3]

In-process, like bench_segmenter_rules.py (no Kafka, no faust: the worker's own work), on
bench_segmenter.py's shop mix, every run measuring in turn:

- off: the sample campaigns, activity counting switched off (the rules before this change);
- counting: the same with the per-day activity counts the features need (always on now);
- on: abandoned_cart with `propensity_below: 0.6` and a model loaded for the workspace;
- ceiling: decoding the same records and nothing else.

Each mode handles the events, then one timer pass fires every due wait (the clock moved past
the 2 s cart wait), so "on" scores each cart reminder. events/s counts events and ticks
together. Per trigger: `fire_due` on the same due profiles with and without the condition
(the profile decoded afresh each time in both), the difference is the scoring. One core;
medians over the runs.
"""

from __future__ import annotations

import argparse
import asyncio
import statistics
import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from bench_segmenter import WS, shop_events

from retarget.common.schemas import TrackedEvent, decoder
from retarget.common.testing import FakeClock
from retarget.segmenter import rules
from retarget.segmenter.app import campaigns_from
from retarget.segmenter.campaigns import CampaignSet
from retarget.segmenter.firing import fire_due
from retarget.segmenter.processor import ProfileProcessor
from retarget.segmenter.propensity.features import FEATURES
from retarget.segmenter.propensity.model import KIND, LogisticModel
from retarget.segmenter.propensity.serving import Score
from retarget.segmenter.schedule import DueSchedule
from retarget.segmenter.settings import SegmenterSettings
from retarget.segmenter.state import Profile, profile_decoder

N = len(FEATURES)
MODEL = LogisticModel(
    kind=KIND,
    features=list(FEATURES),
    mean=[1.0] * N,
    scale=[2.0] * N,
    coef=[0.1 * (i % 5 - 2) for i in range(N)],
    intercept=-1.0,
)


async def nothing(output: str, key: bytes, value: bytes, wait: bool, partition: int | None = None) -> None:
    return None


def campaigns(with_condition: bool) -> CampaignSet:
    base = campaigns_from(SegmenterSettings(campaign_waits={"abandoned_cart": "2s"}))
    if not with_condition:
        return base
    from dataclasses import replace

    changed = [
        replace(c, conditions=c.conditions.model_copy(update={"propensity_below": 0.6}))
        if c.name == "abandoned_cart"
        else c
        for c in base.campaigns
    ]
    return CampaignSet.of(changed)


def scorer(profile: Profile, at: datetime) -> Score:
    return Score(MODEL.score(profile, at), 1)


async def run_mode(records: list[tuple[bytes, bytes]], mode: str, start: datetime) -> tuple[float, int]:
    clock = FakeClock(start)
    processor = ProfileProcessor(
        profiles={},
        due={},
        send=nothing,
        campaigns=campaigns(mode == "on"),
        clock=clock,
        schedule=(schedule := DueSchedule()),
        propensity=scorer if mode == "on" else (lambda p, at: None),
    )
    note = rules.note_activity
    if mode == "off":
        rules.note_activity = lambda profile, event: False  # type: ignore[assignment]
    try:
        started = time.perf_counter()
        for key, value in records:
            await processor.on_event(key, value)
        clock.advance(seconds=3600)
        due = schedule.take_due(clock.timestamp(), processor.due.get, limit=10**9)
        for key in due:
            await processor.on_tick(key)
        elapsed = time.perf_counter() - started
    finally:
        rules.note_activity = note
    return (len(records) + len(due)) / elapsed, len(due)


def per_trigger_us(profiles: dict, now: datetime, with_model: bool) -> float:
    due = [raw for raw in profiles.values() if b'"abandoned_cart"' in raw and b'"pending"' in raw]
    chosen = campaigns(with_model)
    score: Callable[[Profile, datetime], Any] = scorer if with_model else (lambda p, at: None)
    started = time.perf_counter()
    for raw in due:
        fire_due(profile_decoder.decode(raw), chosen, now, propensity=score)
    return (time.perf_counter() - started) / max(1, len(due)) * 1e6


def decode_only(records: list[tuple[bytes, bytes]]) -> float:
    decode = decoder(TrackedEvent).decode
    started = time.perf_counter()
    for _, value in records:
        decode(value)
    return len(records) / (time.perf_counter() - started)


async def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--events", type=int, default=60_000)
    parser.add_argument("--runs", type=int, default=3)
    args = parser.parse_args()
    start = datetime.now(UTC)
    records = shop_events(args.events, start=start, rate=10**9)
    assert all(k.startswith(f"{WS}:".encode()) for k, _ in records)
    results: dict[str, list[float]] = {
        "off": [],
        "counting": [],
        "on": [],
        "ceiling": [],
        "trigger_off": [],
        "trigger_on": [],
    }
    for i in range(args.runs):
        fired = 0
        for mode in ("off", "counting", "on"):
            rate, fired = await run_mode(records, mode, start)
            results[mode].append(rate)
        results["ceiling"].append(decode_only(records))
        pending = await profiles_waiting(records, start)  # each with its cart wait still pending
        later = start.replace(year=start.year + 1)
        results["trigger_off"].append(per_trigger_us(pending, later, False))
        results["trigger_on"].append(per_trigger_us(pending, later, True))
        print(
            f"run {i + 1}: "
            + ", ".join(f"{k} {v[-1]:,.1f}" for k, v in results.items())
            + f" ({fired} due waits)",
            flush=True,
        )
    median = {k: statistics.median(v) for k, v in results.items()}
    print(
        f"median of {args.runs}: events/s off {median['off']:,.0f}, with activity counts {median['counting']:,.0f}, "
        f"with the propensity condition {median['on']:,.0f}; ceiling (decode only) {median['ceiling']:,.0f}; "
        f"per trigger fire_due {median['trigger_off']:.1f} µs without, {median['trigger_on']:.1f} µs with scoring "
        f"(+{median['trigger_on'] - median['trigger_off']:.1f} µs)"
    )


async def profiles_waiting(records: list[tuple[bytes, bytes]], start: datetime) -> dict[bytes, bytes]:
    processor = ProfileProcessor(
        profiles={},
        due={},
        send=nothing,
        campaigns=campaigns(False),
        clock=FakeClock(start),
        schedule=DueSchedule(),
    )
    for key, value in records:
        await processor.on_event(key, value)
    return processor.profiles  # type: ignore[return-value]


if __name__ == "__main__":
    asyncio.run(main())
