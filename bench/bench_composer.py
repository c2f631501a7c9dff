"""Composer throughput on one core: messages composed per second for the sample campaigns.

Measured: the full compose path per trigger, as the stage handler runs it minus Kafka —
decode the trigger record, build the context (babel prices, coupon), sign the links,
render subject + HTML (+ text template), rewrite every link to a signed click URL, derive
the text from the HTML where the campaign has no text template, write the RFC 5322 message
and encode the outbound record. The five sample campaigns are rendered in turn.

Ceiling, in the same run: a bare render of the same templates — the same sandboxed Jinja2
environment, the same compiled templates, a context built once in advance — with none of
the compose work. Composing can't be faster than rendering, so the ratio shows how much
the work around the templates costs.

Usage: .venv/bin/python bench/bench_composer.py [--rounds 5] [--seconds 2]
"""

from __future__ import annotations

import argparse
import os
import statistics
import time
from collections.abc import Callable
from datetime import timedelta
from typing import Any

from retarget.common.clock import SystemClock
from retarget.common.schemas import TriggerFired, decoder, encode
from retarget.composer.compose import Composer
from retarget.composer.context import build_context
from retarget.composer.render import CampaignTemplates
from retarget.composer.samples import CAMPAIGNS, SAMPLE_WORKSPACE, sample_trigger

GOAL = 2_000


def rate(work: Callable[[int], None], seconds: float) -> float:
    """Calls of work(i) per second over about `seconds` (checked every 100 calls)."""
    done, started = 0, time.perf_counter()
    while True:
        for i in range(done, done + 100):
            work(i)
        done += 100
        elapsed = time.perf_counter() - started
        if elapsed >= seconds:
            return done / elapsed


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--rounds", type=int, default=5)
    parser.add_argument("--seconds", type=float, default=2.0)
    args = parser.parse_args()
    if hasattr(os, "sched_setaffinity"):
        os.sched_setaffinity(0, {min(os.sched_getaffinity(0))})  # one core

    templates = CampaignTemplates()
    composer = Composer(
        templates,
        SystemClock(),
        link_secret=b"bench-secret",
        public_url="https://track.example",
        link_ttl=timedelta(days=60),
    )
    triggers = [encode(sample_trigger(name)) for name in CAMPAIGNS]
    decode = decoder(TriggerFired)

    def compose(i: int) -> None:
        trigger = decode.decode(triggers[i % len(triggers)])
        encode(composer.compose(trigger, SAMPLE_WORKSPACE).outbound)

    links = {
        "unsubscribe": "https://track.example/t/u/x",
        "open_pixel": "https://track.example/t/o/x.gif",
        "shop": "https://boots.example/",
    }
    contexts: list[tuple[str, dict[str, Any]]] = [
        (
            name,
            build_context(
                sample_trigger(name), SAMPLE_WORKSPACE, links, "RT-0123456789", "https://boots.example/"
            ),
        )
        for name in CAMPAIGNS
    ]

    def bare_render(i: int) -> None:
        name, context = contexts[i % len(contexts)]
        templates.render(name, context)

    compose(0), bare_render(0)  # load and compile every template before timing
    full, ceiling = [], []
    for _ in range(args.rounds):
        full.append(rate(compose, args.seconds))
        ceiling.append(rate(bare_render, args.seconds))
    f, c = statistics.median(full), statistics.median(ceiling)
    print(
        f"campaigns: {', '.join(CAMPAIGNS)} (in turn); {args.rounds} rounds of {args.seconds:g} s, one core"
    )
    print(
        f"full compose path : {f:8,.0f} msg/s  median  (min {min(full):,.0f}, max {max(full):,.0f})  {1e6 / f:6.0f} us/msg"
    )
    print(
        f"ceiling, bare render: {c:6,.0f} msg/s  median  (min {min(ceiling):,.0f}, max {max(ceiling):,.0f})  {1e6 / c:6.0f} us/msg"
    )
    print(f"full / ceiling    : {f / c:8.0%}     goal >= {GOAL:,} msg/s: {'met' if f >= GOAL else 'NOT met'}")


if __name__ == "__main__":
    main()
