"""Workspaces as the composer reads them: a short-lived cache over the shared WorkspaceStore,
so rendering a burst of triggers costs one query per workspace, not one per message."""

from __future__ import annotations

import time

from retarget.common.workspaces import Workspace, WorkspaceStore


class UnknownWorkspace(LookupError):
    pass


class CachedWorkspaces:
    def __init__(self, store: WorkspaceStore, ttl_s: float = 30.0) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Workspace]] = {}

    async def get(self, workspace_id: str) -> Workspace:
        hit = self._cache.get(workspace_id)
        if hit and time.monotonic() - hit[0] < self._ttl_s:
            return hit[1]
        workspace = await self._store.get(workspace_id)
        if workspace is None:
            raise UnknownWorkspace(workspace_id)
        self._cache[workspace_id] = (time.monotonic(), workspace)
        return workspace


def sender_domain(workspace: Workspace) -> str:
    return workspace.from_email.rpartition("@")[2]
