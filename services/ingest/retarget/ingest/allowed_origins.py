"""Each workspace's allowed browser origins, and the set of every workspace's: read from
PostgreSQL, cached (the rules are retarget.common.origins).

An event sent from a page carries `Origin`; the write key names the workspace, whose list
decides (`CachedWorkspaceOrigins`, per workspace like link_domains.py). A CORS preflight
carries no key, so it can only ask whether *some* workspace allows the origin
(`KnownOrigins`: one set, refreshed as a whole after its TTL, bounded in size). Both are
cached: pages send bursts from the same few shops, and a change takes effect within the TTL.
"""

from __future__ import annotations

import asyncio
import logging
import time
from collections.abc import Callable, Iterable
from typing import Protocol

from cachetools import TTLCache

from retarget.common.origins import origin_allowed
from retarget.common.workspaces import WorkspaceStore
from retarget.ingest.pool import LazyPool

log = logging.getLogger(__name__)


class OriginLookup(Protocol):
    async def of(self, workspace_id: str) -> tuple[str, ...]:
        """The workspace's allowed origins (none for an unknown workspace); Unavailable when
        PostgreSQL can't be asked."""
        ...

    async def every(self, limit: int) -> tuple[str, ...]:
        """Every origin some workspace allows, at most `limit`."""
        ...


class PgOriginLookup:
    def __init__(self, pool: LazyPool) -> None:
        self._pool = pool

    async def of(self, workspace_id: str) -> tuple[str, ...]:
        workspace = await self._pool.run(
            "look up the workspace's allowed origins", lambda p: WorkspaceStore(p).get(workspace_id)
        )
        return workspace.allowed_origins if workspace is not None else ()

    async def every(self, limit: int) -> tuple[str, ...]:
        return await self._pool.run(
            "look up the allowed origins", lambda p: WorkspaceStore(p).all_allowed_origins(limit)
        )


class OriginSet:
    """Allowed origins, matched in O(1) for exact ones (wildcards are few and checked in turn)."""

    def __init__(self, allowed: Iterable[str]) -> None:
        allowed = tuple(allowed)
        self._exact = frozenset(o for o in allowed if "*" not in o)
        self._wildcards = tuple(o for o in allowed if "*" in o)

    def allows(self, origin: str) -> bool:
        # lower case as origin_allowed compares (the stored origins are), so both decide alike
        return origin.lower() in self._exact or origin_allowed(origin, self._wildcards)


class CachedWorkspaceOrigins:
    def __init__(
        self,
        lookup: OriginLookup,
        *,
        ttl_s: float,
        max_entries: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._cache: TTLCache[str, OriginSet] = TTLCache(max_entries, ttl_s, timer=monotonic)

    async def allows(self, workspace_id: str, origin: str) -> bool:
        origins = self._cache.get(workspace_id)
        if origins is None:
            origins = OriginSet(await self._lookup.of(workspace_id))  # an outage raises: nothing cached
            self._cache[workspace_id] = origins
        return origins.allows(origin)


class KnownOrigins:
    """Whether any workspace allows an origin. Refreshed by one query after the TTL (concurrent
    preflights share it), so a spray of made-up origins costs no query at all."""

    def __init__(
        self,
        lookup: OriginLookup,
        *,
        ttl_s: float,
        max_origins: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        self._ttl_s = ttl_s
        self._max_origins = max_origins
        self._monotonic = monotonic
        self._origins = OriginSet(())
        self._expires = float("-inf")
        self._refreshing: asyncio.Future[None] | None = None

    async def allows(self, origin: str) -> bool:
        if self._monotonic() >= self._expires:
            if self._refreshing is None:
                self._refreshing = asyncio.ensure_future(self._refresh())
                self._refreshing.add_done_callback(self._refreshed)
            await asyncio.shield(self._refreshing)  # a client hanging up must not cancel it
        return self._origins.allows(origin)

    def _refreshed(self, done: asyncio.Future[None]) -> None:
        self._refreshing = None
        if not done.cancelled():
            done.exception()  # retrieved here: every waiter may have gone

    async def _refresh(self) -> None:
        origins = await self._lookup.every(self._max_origins)
        if len(origins) >= self._max_origins:
            log.warning("allowed origins over the cache's bound", extra={"limit": self._max_origins})
        self._origins = OriginSet(origins)
        self._expires = self._monotonic() + self._ttl_s
