"""Token buckets: a burst, then the sustained rate, with an honest Retry-After."""

from __future__ import annotations

import pytest

from retarget.ingest.errors import RateLimited
from retarget.ingest.ratelimit import RateLimiter


class Ticks:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


def test_burst_then_refill_at_the_rate() -> None:
    ticks = Ticks()
    limiter = RateLimiter(rate=10, burst=20, monotonic=ticks)
    limiter.check(b"k", 20)
    with pytest.raises(RateLimited) as err:
        limiter.check(b"k", 15)
    assert err.value.status == 429 and err.value.headers() == {"Retry-After": "2"}
    ticks.now = 1.5
    limiter.check(b"k", 15)


def test_keys_have_their_own_buckets() -> None:
    limiter = RateLimiter(rate=1, burst=5, monotonic=Ticks())
    limiter.check(b"a", 5)
    limiter.check(b"b", 5)
    with pytest.raises(RateLimited):
        limiter.check(b"a", 1)


def test_a_batch_larger_than_the_bucket_passes_once_the_bucket_is_full() -> None:
    limiter = RateLimiter(rate=100, burst=50, monotonic=Ticks())
    limiter.check(b"k", 500)  # a full bucket lets it through instead of refusing it forever
    with pytest.raises(RateLimited):
        limiter.check(b"k", 1)
