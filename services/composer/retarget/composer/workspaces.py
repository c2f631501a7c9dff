"""Workspaces as the composer reads them: a short-lived cache over the shared WorkspaceStore,
so rendering a burst of triggers costs one query per workspace, not one per message.

An `identity` or `policy` record on the config feed drops its workspace at once (forget), so
a new sender name or address is used from the next trigger; the TTL stays as the fallback
for changes made straight in PostgreSQL.
"""

from __future__ import annotations

import time
from collections import Counter
from typing import Protocol

from retarget.common.workspaces import Workspace, WorkspaceStore


class ConfigRecord(Protocol):
    """What this reads of a retarget.config.records.ConfigChange."""

    @property
    def workspace_id(self) -> str: ...
    @property
    def kind(self) -> str: ...


class UnknownWorkspace(LookupError):
    pass


class CachedWorkspaces:
    def __init__(self, store: WorkspaceStore, ttl_s: float = 30.0) -> None:
        self._store = store
        self._ttl_s = ttl_s
        self._cache: dict[str, tuple[float, Workspace]] = {}
        self._forgotten: Counter[str] = Counter()  # forget() calls per workspace

    async def get(self, workspace_id: str) -> Workspace:
        hit = self._cache.get(workspace_id)
        if hit and time.monotonic() - hit[0] < self._ttl_s:
            return hit[1]
        forgotten = self._forgotten[workspace_id]
        workspace = await self._store.get(workspace_id)
        if workspace is None:
            raise UnknownWorkspace(workspace_id)
        # a change that arrived while the query ran may be newer than its answer: keep neither
        if self._forgotten[workspace_id] == forgotten:
            self._cache[workspace_id] = (time.monotonic(), workspace)
        return workspace

    def on_config_change(self, change: ConfigRecord) -> None:
        """A ConfigFollower subscriber: identity and policy are the workspace's columns."""
        if change.kind in ("identity", "policy"):
            self.forget(change.workspace_id)

    def forget(self, workspace_id: str) -> None:
        """The workspace changed: the next get reads it again."""
        self._cache.pop(workspace_id, None)
        self._forgotten[workspace_id] += 1


def sender_domain(workspace: Workspace) -> str:
    return workspace.from_email.rpartition("@")[2]
