"""Per-domain AIMD: cut on push-back, add back per quiet interval (clock driven by the test)."""

from __future__ import annotations

import asyncio

import pytest
from prometheus_client import REGISTRY

from retarget.sender.adaptive_rate import CUT_GAP_S, AdaptiveRates, AdaptSettings
from retarget.sender.policy import Rate
from retarget.sender.ratelimit import RateLimiter, Stopping

CONFIGURED = Rate(40, 80)
UNLIMITED = Rate(0, 0)


def rates(**changes: float) -> AdaptiveRates:
    return AdaptiveRates(
        AdaptSettings(**{"factor": 0.5, "floor_per_s": 1, "step": 0.25, "interval_s": 60, **changes})
    )


def test_a_domain_nobody_pushed_back_keeps_its_configured_rate() -> None:
    assert rates().rate("a.example", CONFIGURED, 0) == CONFIGURED


def test_a_cut_halves_rate_and_burst_and_repeated_cuts_stop_at_the_floor() -> None:
    adaptive = rates()
    assert adaptive.slow_down("a.example", CONFIGURED, 0)
    assert adaptive.rate("a.example", CONFIGURED, 0) == Rate(20, 40)
    now = 0.0
    for _ in range(10):
        now += CUT_GAP_S
        adaptive.slow_down("a.example", CONFIGURED, now)
    assert adaptive.rate("a.example", CONFIGURED, now) == Rate(1, 2)
    assert adaptive.rate("b.example", CONFIGURED, now) == CONFIGURED  # per domain


def test_replies_in_flight_at_the_cut_count_once() -> None:
    adaptive = rates()
    assert adaptive.slow_down("a.example", CONFIGURED, 100)
    assert not adaptive.slow_down("a.example", CONFIGURED, 100 + CUT_GAP_S / 2)
    assert adaptive.rate("a.example", CONFIGURED, 100 + CUT_GAP_S / 2).per_s == 20


def test_the_rate_recovers_one_step_per_quiet_interval_up_to_the_configured_rate() -> None:
    adaptive = rates()
    adaptive.slow_down("a.example", CONFIGURED, 0)  # 20/s
    assert adaptive.rate("a.example", CONFIGURED, 59).per_s == 20
    assert adaptive.rate("a.example", CONFIGURED, 60).per_s == 30  # + 0.25 × 40
    assert adaptive.rate("a.example", CONFIGURED, 120) == CONFIGURED
    assert adaptive.slowed() == []  # recovered: forgotten


def test_a_cut_while_recovering_starts_from_the_recovered_rate() -> None:
    adaptive = rates()
    adaptive.slow_down("a.example", CONFIGURED, 0)  # 20
    adaptive.slow_down("a.example", CONFIGURED, 60)  # recovered to 30, cut to 15
    assert adaptive.rate("a.example", CONFIGURED, 60).per_s == 15
    assert adaptive.rate("a.example", CONFIGURED, 119).per_s == 15  # intervals count from the last cut


def test_an_unlimited_domain_has_nothing_to_cut() -> None:
    adaptive = rates()
    assert not adaptive.slow_down("a.example", UNLIMITED, 0)
    assert adaptive.rate("a.example", UNLIMITED, 0) == UNLIMITED


def test_slowed_domains_are_bounded() -> None:
    adaptive = AdaptiveRates(AdaptSettings(), max_domains=2)
    for n, domain in enumerate(("a.example", "b.example", "c.example")):
        adaptive.slow_down(domain, CONFIGURED, n)
    assert adaptive.slowed() == ["b.example", "c.example"]


class Clock:
    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def limiter(clock: Clock) -> RateLimiter:
    return RateLimiter(
        domain_default=Rate(10, 10),
        domain_overrides={"gmail.com": Rate(10, 10)},
        workspace_default=UNLIMITED,
        global_rate=UNLIMITED,
        monotonic=clock,
        adaptive=AdaptiveRates(AdaptSettings(factor=0.5, floor_per_s=1, step=0.5, interval_s=60)),
    )


def gauge(label: str) -> float | None:
    return REGISTRY.get_sample_value("retarget_sender_domain_rate_per_s", {"domain": label})


async def test_the_limiter_spends_a_slowed_domain_at_its_slowed_rate_and_shows_it() -> None:
    clock, stop = Clock(), asyncio.Event()
    limits = limiter(clock)
    for _ in range(10):  # the burst
        assert await limits.acquire("gmail.com", "ws", None, stop) == 0
    limits.slow_down("gmail.com")
    assert gauge("gmail.com") == 5
    # the bucket is retuned, not made afresh: the cut gives no new burst, the next token is 1/5 s away
    slept = asyncio.create_task(limits.acquire("gmail.com", "ws", None, stop))
    await asyncio.sleep(0.05)
    assert not slept.done()
    stop.set()
    with pytest.raises(Stopping):
        await slept
    clock.now += 60
    await limits.acquire("gmail.com", "ws", None, asyncio.Event())
    assert gauge("gmail.com") == 10  # recovered: 5 + 0.5 × 10


async def test_a_cut_shrinks_the_tokens_in_hand_to_the_slowed_burst() -> None:
    clock, stopped = Clock(), asyncio.Event()
    stopped.set()  # a token that is not there yet raises Stopping instead of sleeping
    limits = limiter(clock)
    await limits.acquire("gmail.com", "ws", None, stopped)  # 9 of 10 left
    limits.slow_down("gmail.com")  # 5/s, burst 5
    immediate = 0
    with pytest.raises(Stopping):
        while True:
            await limits.acquire("gmail.com", "ws", None, stopped)
            immediate += 1
    assert immediate == 5


async def test_tokens_accrued_before_the_cut_accrued_at_the_old_rate() -> None:
    clock, stopped = Clock(), asyncio.Event()
    stopped.set()
    limits = limiter(clock)
    for _ in range(10):
        await limits.acquire("gmail.com", "ws", None, stopped)  # the burst, spent
    clock.now += 0.45  # 4.5 tokens at 10/s
    limits.slow_down("gmail.com")
    immediate = 0
    with pytest.raises(Stopping):
        while True:
            await limits.acquire("gmail.com", "ws", None, stopped)
            immediate += 1
    assert immediate == 4


def test_other_domains_show_the_slowest_of_them() -> None:
    clock = Clock()
    limits = limiter(clock)
    assert gauge("other") == 10
    limits.slow_down("small.example")
    clock.now += CUT_GAP_S
    limits.slow_down("small.example")
    limits.slow_down("other.example")
    assert gauge("other") == 2.5
