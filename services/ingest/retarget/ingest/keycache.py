"""The cache in front of credential lookups (sha256 of a key → what it grants).

Keys are checked on every request, so the answers are cached: a found key for `ttl_s` (a
revocation takes effect within it), a miss for `negative_ttl_s`. Anyone can send made-up
keys, so the cache is built so that they can neither load PostgreSQL nor push valid keys out:

* found keys and misses live in two separate bounded maps: a flood of misses only ever
  evicts older misses, never a valid key;
* a key that is not known to be valid (never found, or pushed out) costs one token of a
  bucket of "cold" lookups (`cold_lookups_per_s`, `cold_lookup_burst`); when it is empty the
  request gets a 429 with Retry-After and no query is made. A spray of random keys therefore
  costs at most `burst + rate × its duration` queries. Refreshing a known key after its TTL
  takes no token, so the keys in use keep working during a spray;
* concurrent requests with the same uncached key share one lookup (a cold start under load
  costs one query per key, not one per request).
"""

from __future__ import annotations

import asyncio
import math
from collections import OrderedDict
from collections.abc import Awaitable, Callable
from typing import Any, Generic, TypeVar

from retarget.ingest import metrics
from retarget.ingest.errors import RateLimited
from retarget.ingest.ratelimit import TokenBucket

T = TypeVar("T")


class KeyCache(Generic[T]):
    def __init__(
        self,
        lookup: Callable[[bytes], Awaitable[T | None]],
        *,
        credential: str,
        ttl_s: float,
        negative_ttl_s: float,
        max_entries: int,
        cold_lookups_per_s: float,
        cold_lookup_burst: int,
        monotonic: Callable[[], float],
    ) -> None:
        self._lookup = lookup
        self._credential = credential  # the metric's label: write_key or secret_key
        self._ttl_s = ttl_s
        self._negative_ttl_s = negative_ttl_s
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._found: OrderedDict[bytes, tuple[T, float]] = OrderedDict()  # least recently used first
        self._missed: OrderedDict[bytes, float] = OrderedDict()  # oldest miss first
        self._cold = TokenBucket(cold_lookups_per_s, cold_lookup_burst, monotonic())
        self._pending: dict[bytes, asyncio.Future[T | None]] = {}

    async def get(self, key_hash: bytes) -> T | None:
        """What the key grants, None when it is unknown or revoked (RateLimited: try again later)."""
        now = self._monotonic()
        found = self._found.get(key_hash)
        if found is not None and found[1] > now:
            self._found.move_to_end(key_hash)
            return found[0]
        missed_until = self._missed.get(key_hash)
        if missed_until is not None and missed_until > now:
            return None
        pending = self._pending.get(key_hash)
        if pending is None:
            if found is None:
                self._spend_cold_lookup(now)
            pending = self._pending[key_hash] = asyncio.ensure_future(self._look_up(key_hash))
            pending.add_done_callback(lambda done: self._forget(key_hash, done))
        # shielded: a client that hangs up must not cancel the lookup the others wait for
        return await asyncio.shield(pending)

    def _forget(self, key_hash: bytes, done: asyncio.Future[T | None]) -> None:
        self._pending.pop(key_hash, None)
        if not done.cancelled():
            done.exception()  # retrieved here: every waiter may have gone (no "never retrieved" noise)

    def _spend_cold_lookup(self, now: float) -> None:
        wait = self._cold.take(1, now)
        if wait > 0:
            metrics.count_key_lookup(self._credential, "shed")
            raise RateLimited(
                "too many requests with keys this server has not seen recently; try again later",
                retry_after_s=math.ceil(wait),
            )

    async def _look_up(self, key_hash: bytes) -> T | None:
        answer = await self._lookup(key_hash)
        metrics.count_key_lookup(self._credential, "unknown" if answer is None else "found")
        now = self._monotonic()
        if answer is None:
            self._found.pop(key_hash, None)
            self._missed[key_hash] = now + self._negative_ttl_s
            self._missed.move_to_end(key_hash)
            _bound(self._missed, self._max_entries)
        else:
            self._missed.pop(key_hash, None)
            self._found[key_hash] = (answer, now + self._ttl_s)
            self._found.move_to_end(key_hash)
            _bound(self._found, self._max_entries)
        return answer


def _bound(entries: OrderedDict[bytes, Any], max_entries: int) -> None:
    while len(entries) > max_entries:
        entries.popitem(last=False)
