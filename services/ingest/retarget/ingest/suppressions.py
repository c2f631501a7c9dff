"""Unsubscribes from tracking links, written to PostgreSQL before anyone is told "done".

"Everything" goes to the `suppressions` table the sender checks (reason 'unsubscribed');
"only this campaign" goes to `campaign_unsubscribes` (migration 004). Both are idempotent:
a replayed unsubscribe changes nothing and reports that it was already there.
"""

from __future__ import annotations

from typing import Literal, Protocol

from retarget.common.workspaces import WorkspaceStore
from retarget.ingest.pool import LazyPool

Scope = Literal["all", "campaign"]


class Unsubscribes(Protocol):
    async def workspace_exists(self, workspace_id: str) -> bool: ...

    async def unsubscribe(
        self, workspace_id: str, email_hash: bytes, *, scope: Scope, campaign: str, source: str
    ) -> bool:
        """Record it; True when it is new, False when it was already recorded."""
        ...


_ALL = """INSERT INTO suppressions (workspace_id, email_hash, reason, source)
VALUES ($1, $2, 'unsubscribed', $3) ON CONFLICT (workspace_id, email_hash) DO NOTHING"""
_CAMPAIGN = """INSERT INTO campaign_unsubscribes (workspace_id, email_hash, campaign, source)
VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id, email_hash, campaign) DO NOTHING"""


class PgUnsubscribes:
    def __init__(self, pool: LazyPool) -> None:
        self._pool = pool

    async def workspace_exists(self, workspace_id: str) -> bool:
        found = await self._pool.run("look up the workspace", lambda p: WorkspaceStore(p).get(workspace_id))
        return found is not None

    async def unsubscribe(
        self, workspace_id: str, email_hash: bytes, *, scope: Scope, campaign: str, source: str
    ) -> bool:
        if scope == "all":
            status = await self._pool.run(
                "record the unsubscribe", lambda p: p.execute(_ALL, workspace_id, email_hash, source)
            )
        else:
            status = await self._pool.run(
                "record the unsubscribe",
                lambda p: p.execute(_CAMPAIGN, workspace_id, email_hash, campaign, source),
            )
        return bool(status == "INSERT 0 1")
