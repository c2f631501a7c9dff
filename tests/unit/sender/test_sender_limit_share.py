"""Each sender enforces its share of every limit: owned partitions / all partitions."""

from __future__ import annotations

import asyncio

import pytest
from aiokafka import TopicPartition

from retarget.sender.assignment import ShareListener
from retarget.sender.limit_share import LimitShare, scaled
from retarget.sender.policy import Rate
from retarget.sender.ratelimit import RateLimiter
from retarget.sender.testing import UNLIMITED

TOPIC = "t.outbound.v1"


def test_the_share_is_the_owned_fraction_of_the_partitions() -> None:
    assert LimitShare(3, 12).fraction == 0.25
    assert LimitShare(12, 12).fraction == 1.0


def test_a_process_owning_nothing_keeps_one_partitions_worth() -> None:
    # it still sends the retries it leases from the shared queue: a floor, not a stop
    assert LimitShare(0, 12).fraction == pytest.approx(1 / 12)


def test_before_the_partition_count_is_known_the_share_is_whole() -> None:
    assert LimitShare(0, 0).fraction == 1.0


def test_a_rate_is_cut_to_the_share_rate_and_burst_alike() -> None:
    assert scaled(Rate(100, 40), 0.25) == Rate(25, 10)
    assert scaled(Rate(100, 40), 1.0) == Rate(100, 40)


def test_a_cut_burst_is_rounded_down_but_never_below_one() -> None:
    assert scaled(Rate(20, 10), 1 / 3) == Rate(pytest.approx(20 / 3), 3)  # type: ignore[arg-type]
    assert scaled(Rate(20, 2), 1 / 12) == Rate(pytest.approx(20 / 12), 1)  # type: ignore[arg-type]


def test_no_limit_stays_no_limit() -> None:
    assert scaled(UNLIMITED, 0.5) == UNLIMITED


class _Metadata:
    """What the listener asks the consumer: the topic's partitions (pure bookkeeping)."""

    def __init__(self, partitions: int) -> None:
        self.partitions = partitions

    def partitions_for_topic(self, topic: str) -> set[int] | None:
        return set(range(self.partitions)) if topic == TOPIC else None


def _listener(partitions: int = 6) -> tuple[ShareListener, list[float]]:
    applied: list[float] = []
    listener = ShareListener(_Metadata(partitions), TOPIC, applied.append, partitions_guess=partitions)  # type: ignore[arg-type]
    return listener, applied


def _tps(*numbers: int, topic: str = TOPIC) -> list[TopicPartition]:
    return [TopicPartition(topic, n) for n in numbers]


async def test_shares_of_a_group_sum_to_one_after_each_rebalance() -> None:
    a, applied_a = _listener()
    b, applied_b = _listener()
    await a.on_partitions_assigned(_tps(0, 1, 2, 3, 4, 5))  # alone
    assert applied_a[-1] == 1.0
    await a.on_partitions_revoked(_tps(0, 1, 2, 3, 4, 5))  # b joins: everything moves (eager)
    assert applied_a[-1] == pytest.approx(1 / 6)  # the floor while it owns nothing
    await a.on_partitions_assigned(_tps(0, 1, 2, 3))
    await b.on_partitions_assigned(_tps(4, 5))
    assert applied_a[-1] + applied_b[-1] == pytest.approx(1.0)
    assert (a.partitions, b.partitions) == ([0, 1, 2, 3], [4, 5])
    assert a.describe() == {
        "outbound_partitions": [0, 1, 2, 3],
        "outbound_partitions_total": 6,
        "limit_share": 0.6667,
    }


async def test_partitions_of_other_topics_do_not_count() -> None:
    a, applied = _listener()
    await a.on_partitions_assigned(_tps(0, 1, 2) + _tps(3, 4, 5, topic="elsewhere"))
    assert applied[-1] == 0.5


async def test_the_configured_count_stands_in_until_the_topic_is_known() -> None:
    applied: list[float] = []
    listener = ShareListener(_Metadata(0), "unknown", applied.append, partitions_guess=4)  # type: ignore[arg-type]
    assert applied == [0.25]  # before joining: one partition's worth of the configured count
    await listener.on_partitions_assigned([TopicPartition("unknown", 0), TopicPartition("unknown", 1)])
    assert applied[-1] == 0.5


def _limiter(**rates: Rate) -> tuple[RateLimiter, list[float]]:
    now = [100.0]  # a clock that moves only when the test says so
    limiter = RateLimiter(
        domain_default=rates.get("domain", UNLIMITED),
        domain_overrides={},
        workspace_default=rates.get("workspace", UNLIMITED),
        global_rate=rates.get("global_", UNLIMITED),
        monotonic=lambda: now[0],
    )
    return limiter, now


def test_the_domain_bucket_enforces_the_share() -> None:
    limiter, _ = _limiter(domain=Rate(100, 40))
    limiter.use_share(0.25)
    assert limiter.domain_rate("gmail.com") == Rate(25, 10)


async def test_the_workspace_and_global_buckets_enforce_the_share_too() -> None:
    stop = asyncio.Event()
    for scope in ("workspace", "global_"):
        limiter, _ = _limiter(**{scope: Rate(1000, 4)})
        limiter.use_share(0.25)  # burst 1: the second message waits
        assert await limiter.acquire("a.example", "ws1", None, stop) == 0
        assert await limiter.acquire("b.example", "ws1", None, stop) > 0, scope
        whole, _ = _limiter(**{scope: Rate(1000, 4)})
        assert [await whole.acquire("a.example", "ws1", None, stop) for _ in range(4)] == [0, 0, 0, 0]


def test_a_new_share_keeps_what_the_bucket_owes_no_fresh_burst() -> None:
    limiter, now = _limiter(domain=Rate(10, 10))
    limiter.use_share(0.5)
    bucket = limiter._bucket(limiter._domains, "gmail.com", limiter.domain_rate("gmail.com"))
    assert bucket is not None
    for _ in range(5):
        bucket.reserve(now[0])  # the share's burst of 5, spent
    limiter.use_share(1.0)  # a rebalance gave this process every partition
    again = limiter._bucket(limiter._domains, "gmail.com", limiter.domain_rate("gmail.com"))
    assert again is bucket and again.rate == Rate(10, 10)
    assert again.reserve(now[0]) > 0  # still empty: the rebalance handed out no burst


async def test_a_new_share_hands_the_global_bucket_no_fresh_burst_either() -> None:
    # the mutation replacing the global bucket's retune with a new bucket survived: every
    # rebalance would have handed the process a full global burst on top of what it owes (#19, atk19)
    stop = asyncio.Event()
    limiter, now = _limiter(global_=Rate(10, 10))
    limiter.use_share(0.5)
    assert [await limiter.acquire(f"d{n}.example", "ws1", None, stop) for n in range(5)] == [0] * 5
    limiter.use_share(1.0)  # a rebalance gave this process every partition
    bucket = limiter._global_bucket()
    assert bucket is not None and bucket.rate == Rate(10, 10)
    assert bucket.reserve(now[0]) > 0  # still empty: the rebalance handed out no burst
