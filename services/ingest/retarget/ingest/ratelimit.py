"""Per-key token buckets: write keys counted in events, secret keys in requests.

A key may send `burst` events at once and `rate` events per second after that; a batch
costs one token per event. Buckets live in this process's memory, so with N processes a
key's effective limit is N times the setting (a shared limiter is a later concern).
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable

from retarget.ingest.errors import RateLimited


class TokenBucket:
    def __init__(self, rate: float, burst: float, now: float) -> None:
        self.rate = rate
        self.burst = burst
        self.tokens = burst
        self.updated = now

    def take(self, cost: float, now: float) -> float:
        """Take `cost` tokens; 0.0 when granted, otherwise the seconds until they would be."""
        self.tokens = min(self.burst, self.tokens + (now - self.updated) * self.rate)
        self.updated = now
        cost = min(cost, self.burst)  # a batch larger than the bucket must still pass eventually
        if self.tokens >= cost:
            self.tokens -= cost
            return 0.0
        return (cost - self.tokens) / self.rate


class RateLimiter:
    def __init__(
        self,
        rate: float,
        burst: float,
        *,
        what: str = "write key",
        unit: str = "events",
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._rate = rate
        self._burst = burst
        self._what = what  # "write key" (events) or "secret key" (requests): named in the 429
        self._unit = unit
        self._monotonic = monotonic
        self._buckets: dict[bytes, TokenBucket] = {}

    def check(self, key: bytes, cost: int) -> None:
        """Spend `cost` tokens of `key`'s bucket or raise RateLimited with a Retry-After."""
        now = self._monotonic()
        bucket = self._buckets.get(key)
        if bucket is None:
            bucket = self._buckets[key] = TokenBucket(self._rate, self._burst, now)
        wait = bucket.take(cost, now)
        if wait > 0:
            raise RateLimited(
                f"{self._what} is over its limit of {self._rate:g} {self._unit}/s",
                retry_after_s=math.ceil(wait),
            )
