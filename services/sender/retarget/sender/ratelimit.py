"""Token buckets per recipient domain, per workspace and for the whole process.

A message takes one token from each bucket, domain first (usually the tightest), then
workspace, then global, waiting whenever a bucket is empty: the work pauses, nothing is
dropped. A bucket hands out reservations — its level may go below zero and the caller waits
until its token has accrued — so waiters are served in arrival order without polling.

Limits are per sender process. The outbound topic is keyed by recipient domain, so one
process owns a domain and its domain bucket is exact; the workspace and global rates are per
process and must be divided by the number of senders by whoever sets them.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

from retarget.sender.metrics import TOKEN_WAIT_SECONDS
from retarget.sender.policy import Rate

# Per table (domains, workspaces). Past it the least recently used bucket is dropped; with
# 10,000 more recent keys in between it has refilled unless its rate is below ~1 token per
# 10,000 messages, so what is forgotten is at most one burst.
_MAX_BUCKETS = 10_000


class Stopping(Exception):
    """The process is stopping; the message was not started (its batch is replayed later)."""


class TokenBucket:
    def __init__(self, rate: Rate, now: float) -> None:
        self.rate = rate
        self.level = float(rate.burst)
        self.updated = now

    def reserve(self, now: float) -> float:
        """Take a token; return how many seconds until it is really there (0 = now)."""
        self.level = min(float(self.rate.burst), self.level + (now - self.updated) * self.rate.per_s)
        self.updated = now
        self.level -= 1
        return 0.0 if self.level >= 0 else -self.level / self.rate.per_s

    def full(self, now: float) -> bool:
        return self.level + (now - self.updated) * self.rate.per_s >= self.rate.burst


class RateLimiter:
    def __init__(
        self,
        *,
        domain_default: Rate,
        domain_overrides: dict[str, Rate],
        workspace_default: Rate,
        global_rate: Rate,
        monotonic: Callable[[], float] = time.monotonic,
        max_buckets: int = _MAX_BUCKETS,
    ) -> None:
        self.domain_default = domain_default
        self.domain_overrides = domain_overrides
        self.workspace_default = workspace_default
        self.monotonic = monotonic
        self._global = None if global_rate.unlimited else TokenBucket(global_rate, monotonic())
        self.max_buckets = max_buckets
        self._domains: OrderedDict[str, TokenBucket] = OrderedDict()
        self._workspaces: OrderedDict[str, TokenBucket] = OrderedDict()

    def _bucket(self, table: OrderedDict[str, TokenBucket], key: str, rate: Rate) -> TokenBucket | None:
        if rate.unlimited:
            return None
        bucket = table.get(key)
        if bucket is None or bucket.rate != rate:  # a workspace's rate changed: start afresh
            bucket = table[key] = TokenBucket(rate, self.monotonic())
            while len(table) > self.max_buckets:
                # Least recently used first: it has had the longest to refill, so dropping it
                # forgets nothing (a full bucket is what a new one starts as). O(1) a key.
                table.popitem(last=False)
        table.move_to_end(key)
        return bucket

    async def acquire(
        self, domain: str, workspace_id: str, workspace_rate: Rate | None, stop: asyncio.Event
    ) -> float:
        """Wait for a token of each bucket; return the seconds waited. Raises Stopping on shutdown."""
        domain = domain.lower()
        buckets = (
            (
                "domain",
                self._bucket(self._domains, domain, self.domain_overrides.get(domain, self.domain_default)),
            ),
            (
                "workspace",
                self._bucket(self._workspaces, workspace_id, workspace_rate or self.workspace_default),
            ),
            ("global", self._global),
        )
        waited = 0.0
        for scope, bucket in buckets:
            if bucket is None:
                continue
            delay = bucket.reserve(self.monotonic())
            if delay > 0:
                TOKEN_WAIT_SECONDS.labels(scope).observe(delay)
                await _sleep_unless_stopping(delay, stop)
                waited += delay
        return waited


async def _sleep_unless_stopping(seconds: float, stop: asyncio.Event) -> None:
    if stop.is_set():
        raise Stopping
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return
    raise Stopping
