"""Each workspace's link domains, for the click redirect: read from PostgreSQL, cached.

A click token's signature proves the composer wrote it, not that its destination is one of
the workspace's own sites: tokens signed before the composer checked destinations, or by a
composer with another workspace's settings, are still valid for weeks. So /t/c redirects
only to the workspace's link domains (retarget.common.link_domains). Clicks come in bursts
on the same few workspaces, so the answer is cached with a TTL (a change of domains takes
effect within it) and a bound on the number of workspaces kept.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import Protocol

from cachetools import TTLCache

from retarget.common.link_domains import allowed_link_domains
from retarget.common.workspaces import WorkspaceStore
from retarget.ingest.pool import LazyPool


class LinkDomains(Protocol):
    async def of(self, workspace_id: str) -> tuple[str, ...] | None:
        """The workspace's allowed link domains; None when there is no such workspace.
        Raises Unavailable when PostgreSQL can't be asked."""
        ...


class PgLinkDomains:
    def __init__(self, pool: LazyPool) -> None:
        self._pool = pool

    async def of(self, workspace_id: str) -> tuple[str, ...] | None:
        workspace = await self._pool.run(
            "look up the workspace's link domains", lambda p: WorkspaceStore(p).get(workspace_id)
        )
        return allowed_link_domains(workspace) if workspace is not None else None


_MISSING = object()


class CachedLinkDomains:
    def __init__(
        self,
        lookup: LinkDomains,
        *,
        ttl_s: float,
        max_entries: int,
        monotonic: Callable[[], float] = time.monotonic,
    ) -> None:
        self._lookup = lookup
        # None (no such workspace) is cached too, so the key's presence is what counts
        self._cache: TTLCache[str, tuple[str, ...] | None] = TTLCache(max_entries, ttl_s, timer=monotonic)

    async def of(self, workspace_id: str) -> tuple[str, ...] | None:
        cached = self._cache.get(workspace_id, _MISSING)  # one read: it may expire between two
        if cached is not _MISSING:
            return cached  # type: ignore[return-value]
        domains = await self._lookup.of(workspace_id)  # an outage raises: nothing cached
        self._cache[workspace_id] = domains
        return domains
