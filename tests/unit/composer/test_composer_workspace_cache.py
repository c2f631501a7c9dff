"""CachedWorkspaces: an identity change on the feed drops the workspace at once."""

from __future__ import annotations

import asyncio
from types import SimpleNamespace
from typing import Any

from retarget.common.workspaces import Workspace
from retarget.composer.workspaces import CachedWorkspaces


class Store:
    """A WorkspaceStore that counts its queries; `gate` holds a query open."""

    def __init__(self) -> None:
        self.name = "Boot Shop"
        self.queries = 0
        self.gate: asyncio.Event | None = None

    async def get(self, workspace_id: str) -> Workspace:
        self.queries += 1
        name = self.name
        if self.gate is not None:
            await self.gate.wait()
        return Workspace(workspace_id, name, name, "news@boots.example", "1 Main St")


def cached(store: Store) -> CachedWorkspaces:
    return CachedWorkspaces(store, ttl_s=3600)  # type: ignore[arg-type]


async def test_forget_makes_the_next_get_read_the_change():
    store = Store()
    workspaces = cached(store)
    assert (await workspaces.get("ws")).name == "Boot Shop"
    store.name = "Boot Shop Ltd"
    assert (await workspaces.get("ws")).name == "Boot Shop"  # cached: the TTL is an hour
    workspaces.forget("ws")
    assert (await workspaces.get("ws")).name == "Boot Shop Ltd" and store.queries == 2


async def test_a_change_arriving_during_a_query_does_not_leave_the_old_answer_cached():
    store = Store()
    workspaces = cached(store)
    store.gate = asyncio.Event()
    in_flight: Any = asyncio.create_task(workspaces.get("ws"))
    await asyncio.sleep(0)  # the query has read the old name and waits
    store.name = "Boot Shop Ltd"
    workspaces.forget("ws")
    store.gate.set()
    assert (await in_flight).name == "Boot Shop"
    assert (await workspaces.get("ws")).name == "Boot Shop Ltd"


async def test_identity_and_policy_records_drop_the_workspace_and_templates_do_not():
    store = Store()
    workspaces = cached(store)
    await workspaces.get("ws")
    workspaces.on_config_change(SimpleNamespace(workspace_id="ws", kind="template"))
    workspaces.on_config_change(SimpleNamespace(workspace_id="other", kind="identity"))
    await workspaces.get("ws")
    assert store.queries == 1
    for kind in ("identity", "policy"):
        workspaces.on_config_change(SimpleNamespace(workspace_id="ws", kind=kind))
        await workspaces.get("ws")
    assert store.queries == 3
