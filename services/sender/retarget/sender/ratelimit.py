"""Token buckets per recipient domain, per workspace and for the whole process.

A message takes one token from each bucket, domain first (usually the tightest), then
workspace, then global, waiting whenever a bucket is empty: the work pauses, nothing is
dropped. A bucket hands out reservations — its level may go below zero and the caller waits
until its token has accrued — so waiters are served in arrival order without polling.

Limits hold across the group of senders: the configured rates are the group's, and each
process enforces its share of every one (`use_share`, limit_share.py) — the fraction of the
outbound partitions it owns, recomputed on every rebalance (assignment.py). The outbound topic
is keyed by recipient address, so each partition carries ~1/P of every domain's and workspace's
traffic and the shares sum to the configured rate. A share is only ever an upper bound: a
process whose partitions happen to carry less of a domain than its share sends less, never
more (docs/operations.md, "Scaling out", quantifies it). AIMD (adaptive_rate.py) slows each
process's own share by the replies that process got.
"""

from __future__ import annotations

import asyncio
import time
from collections import OrderedDict
from collections.abc import Callable

from retarget.sender.adaptive_rate import AdaptiveRates
from retarget.sender.limit_share import scaled
from retarget.sender.metrics import DOMAIN_RATE, MAILBOX_PROVIDERS, TOKEN_WAIT_SECONDS
from retarget.sender.policy import Rate

# Per table (domains, workspaces). Past it the least recently used bucket is dropped, but
# only once it has refilled: a bucket made afresh starts full, so dropping one that still
# owes tokens (reservations of waiting messages) would hand its domain a second full burst
# on top of them — a limit bypass for anyone who can spray messages over many domains. A
# table can hold more than this only with buckets still refilling, at most what the
# process sends during one refill time.
_MAX_BUCKETS = 10_000
_EVICTION_TRIES = 4  # least recently used buckets looked at per new one: O(1) a key


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

    def retune(self, rate: Rate, now: float) -> None:
        """Go on at `rate` from now, keeping what is owed (a fresh bucket would start full).

        What accrued so far accrued at the old rate; the next reserve() caps it at the new burst.
        """
        self.level = min(float(self.rate.burst), self.level + (now - self.updated) * self.rate.per_s)
        self.updated = now
        self.rate = rate

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
        adaptive: AdaptiveRates | None = None,
        named_domains: frozenset[str] = MAILBOX_PROVIDERS,
    ) -> None:
        self.domain_default = domain_default
        self.domain_overrides = domain_overrides
        self.workspace_default = workspace_default
        self.monotonic = monotonic
        self.global_rate = global_rate
        self.share = 1.0  # this process's fraction of every limit (use_share)
        self._global = None if global_rate.unlimited else TokenBucket(global_rate, monotonic())
        self.max_buckets = max_buckets
        self._domains: OrderedDict[str, TokenBucket] = OrderedDict()
        self._workspaces: OrderedDict[str, TokenBucket] = OrderedDict()
        # throttling and policy replies slow a domain down (AIMD); None: fixed rates
        self.adaptive = adaptive
        self.named_domains = named_domains | frozenset(domain_overrides)
        self._shown: dict[str, float] = {}  # the rate last shown in DOMAIN_RATE, by named domain
        DOMAIN_RATE.labels("other").set_function(self._slowest_other_rate)

    def use_share(self, fraction: float) -> None:
        """Enforce `fraction` of every limit from now on (a rebalance moved partitions).

        Buckets take the new rate on their next use, keeping what they owe (retune): a
        rebalance never hands out a fresh burst.
        """
        self.share = fraction

    def domain_rate(self, domain: str) -> Rate:
        """This process's rate for the domain now: configured, maybe slowed by its replies, times the share."""
        configured = self.domain_overrides.get(domain, self.domain_default)
        if self.adaptive is not None:
            configured = self.adaptive.rate(domain, configured, self.monotonic())
        return scaled(configured, self.share)

    def slow_down(self, domain: str) -> None:
        """The domain answered with throttling or a policy refusal: cut its rate (adaptive_rate.py)."""
        if self.adaptive is None:
            return
        domain = domain.lower()
        configured = self.domain_overrides.get(domain, self.domain_default)
        if self.adaptive.slow_down(domain, configured, self.monotonic()):
            self._show_rate(domain, self.domain_rate(domain))

    def _show_rate(self, domain: str, rate: Rate) -> None:
        # per message: a dict look-up, and the gauge only when the rate changed
        if domain in self.named_domains and self._shown.get(domain) != rate.per_s:
            DOMAIN_RATE.labels(domain).set(rate.per_s)  # `other` is computed when scraped
            self._shown[domain] = rate.per_s

    def _slowest_other_rate(self) -> float:
        others = [d for d in (self.adaptive.slowed() if self.adaptive else []) if d not in self.named_domains]
        return min((self.domain_rate(d).per_s for d in others), default=self.domain_default.per_s)

    def _bucket(self, table: OrderedDict[str, TokenBucket], key: str, rate: Rate) -> TokenBucket | None:
        if rate.unlimited:
            return None
        bucket = table.get(key)
        if bucket is not None and bucket.rate != rate:  # slowed, recovering, re-shared: same bucket
            bucket.retune(rate, self.monotonic())
        elif bucket is None:
            now = self.monotonic()
            table.pop(key, None)
            _evict_full(table, self.max_buckets - 1, now)  # room for the new one
            bucket = table[key] = TokenBucket(rate, now)
        table.move_to_end(key)
        return bucket

    def _global_bucket(self) -> TokenBucket | None:
        if self._global is not None:
            rate = scaled(self.global_rate, self.share)
            if self._global.rate != rate:
                self._global.retune(rate, self.monotonic())
        return self._global

    async def acquire(
        self, domain: str, workspace_id: str, workspace_rate: Rate | None, stop: asyncio.Event
    ) -> float:
        """Wait for a token of each bucket; return the seconds waited. Raises Stopping on shutdown."""
        domain = domain.lower()
        domain_rate = self.domain_rate(domain)
        if self.adaptive is not None:
            self._show_rate(domain, domain_rate)
        buckets = (
            ("domain", self._bucket(self._domains, domain, domain_rate)),
            (
                "workspace",
                self._bucket(
                    self._workspaces,
                    workspace_id,
                    scaled(workspace_rate or self.workspace_default, self.share),
                ),
            ),
            ("global", self._global_bucket()),
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


def _evict_full(table: OrderedDict[str, TokenBucket], max_buckets: int, now: float) -> None:
    """Drop least recently used buckets past `max_buckets`, only those that are full again."""
    tries = _EVICTION_TRIES
    while len(table) > max_buckets and tries > 0:
        tries -= 1
        key, oldest = next(iter(table.items()))
        if oldest.full(now):  # forgets nothing: a full bucket is what a new one starts as
            del table[key]
        else:  # still owed: keep it, look at it again after the others
            table.move_to_end(key)


async def _sleep_unless_stopping(seconds: float, stop: asyncio.Event) -> None:
    if stop.is_set():
        raise Stopping
    try:
        await asyncio.wait_for(stop.wait(), seconds)
    except TimeoutError:
        return
    raise Stopping
