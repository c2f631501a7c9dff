"""Send-time optimisation on the demo's simulated recipients, in compressed (simulated) time.

    .venv/bin/python bench/bench_send_time.py [--people 5000] [--seed 7] [--max-delay-h 24] [--quiet 21:00-08:00]

Each person has a reading hour of their own (retarget.demo.open_hours). History: up to eight
earlier emails each, sent at random times over 30 days; the human opens they cause are learned
with the segmenter's own rule (send_time.note_engagement). Then one reminder per person whose
wait ends at a random time of the next day, sent three ways in the same run:

* immediate (the baseline): at the end of the wait;
* optimal: at `send_time.choose_send_time` (learned histogram + population prior, max_delay);
* oracle (the ceiling): at the person's true hour, if within max_delay.

Printed per way: the share of sends in the person's true hour, the expected open rate (the
mean of the model's open chance, so no sampling noise on top) and the mean hold; and the same
split by how many opens the person's history holds (0: the prior alone).
"""

from __future__ import annotations

import argparse
import random
import statistics
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime, timedelta
from zoneinfo import ZoneInfo

from retarget.demo.open_hours import maybe_open, next_reading, open_chance, true_hour
from retarget.segmenter.send_time import SendWindow, choose_send_time, note_engagement
from retarget.segmenter.send_windows import parse_quiet_hours

START = datetime(2026, 3, 2, tzinfo=UTC)
ZONE = ZoneInfo("UTC")  # the demo workspace's


@dataclass
class Person:
    hour: int
    histogram: list[int]
    opens: int
    wait_end: datetime


def people(count: int, rng: random.Random) -> list[Person]:
    out = []
    for n in range(count):
        hour = true_hour(f"person-{n}")
        histogram: list[int] = []
        opens = 0
        for _ in range(rng.randint(0, 8)):
            sent = START - timedelta(days=30) + timedelta(seconds=rng.uniform(0, 30 * 86400))
            opened = maybe_open(sent, hour, rng)
            if opened is not None:
                histogram = note_engagement(histogram, opened, ZONE)
                opens += 1
        wait_end = START + timedelta(seconds=rng.uniform(0, 86400))
        out.append(Person(hour, histogram, opens, wait_end))
    return out


def measure(group: list[Person], send_at: Callable[[Person], datetime]) -> tuple[float, float, float]:
    """(share in the true hour, expected open rate, mean hold in hours)"""
    times = [send_at(p) for p in group]
    pairs = list(zip(times, group, strict=True))
    in_hour = statistics.mean(t.astimezone(ZONE).hour == p.hour for t, p in pairs)
    rate = statistics.mean(open_chance(t, p.hour) for t, p in pairs)
    hold = statistics.mean((t - p.wait_end).total_seconds() / 3600 for t, p in pairs)
    return in_hour, rate, hold


def main() -> None:
    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("--people", type=int, default=5000)
    parser.add_argument("--seed", type=int, default=7)
    parser.add_argument("--max-delay-h", type=float, default=24.0)
    parser.add_argument("--quiet", default=None, help="quiet hours, e.g. 21:00-08:00")
    args = parser.parse_args()
    max_delay = timedelta(hours=args.max_delay_h)
    window = SendWindow("UTC", *(parse_quiet_hours(args.quiet) or (None, None)))
    everyone = people(args.people, random.Random(args.seed))

    def immediate(p: Person) -> datetime:
        return p.wait_end

    def optimal(p: Person) -> datetime:
        return choose_send_time(p.histogram, p.wait_end, max_delay, ZONE, window)

    def oracle(p: Person) -> datetime:
        at = max(next_reading(p.wait_end, p.hour), p.wait_end)
        return at if at - p.wait_end <= max_delay else p.wait_end

    print(
        f"people={args.people} seed={args.seed} max_delay={args.max_delay_h:g}h quiet={args.quiet or 'none'}"
    )
    print("| sends | in the true hour | expected open rate | mean hold |")
    print("|---|---|---|---|")
    for name, way in (
        ("immediate (baseline)", immediate),
        ("optimal", optimal),
        ("oracle (ceiling)", oracle),
    ):
        in_hour, rate, hold = measure(everyone, way)
        print(f"| {name} | {in_hour:.1%} | {rate:.1%} | {hold:.1f} h |")
    print()
    print("| history | people | optimal: in the true hour | optimal: open rate | immediate: open rate |")
    print("|---|---|---|---|---|")
    for label, low, high in (("0 opens (prior only)", 0, 0), ("1-2 opens", 1, 2), ("3+ opens", 3, 99)):
        group = [p for p in everyone if low <= p.opens <= high]
        if group:
            in_hour, rate, _ = measure(group, optimal)
            base = measure(group, immediate)[1]
            print(f"| {label} | {len(group)} | {in_hour:.1%} | {rate:.1%} | {base:.1%} |")


if __name__ == "__main__":
    main()
