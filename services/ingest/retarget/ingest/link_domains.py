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
from collections import OrderedDict
from collections.abc import Callable
from typing import Protocol

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
        self._ttl_s = ttl_s
        self._max_entries = max_entries
        self._monotonic = monotonic
        self._cache: OrderedDict[str, tuple[tuple[str, ...] | None, float]] = OrderedDict()

    async def of(self, workspace_id: str) -> tuple[str, ...] | None:
        now = self._monotonic()
        cached = self._cache.get(workspace_id)
        if cached is not None and cached[1] > now:
            return cached[0]
        domains = await self._lookup.of(workspace_id)  # an outage raises: nothing cached
        self._cache[workspace_id] = (domains, now + self._ttl_s)
        self._cache.move_to_end(workspace_id)
        while len(self._cache) > self._max_entries:
            self._cache.popitem(last=False)  # the least recently refreshed workspace
        return domains
