"""The demo workspace, its write key and link secret: created once, reused by every later run.

The write key is shown by `retarget devstack status` on purpose (anyone may post events to the
local demo); the link secret is not."""

from __future__ import annotations

import secrets
from dataclasses import dataclass

import asyncpg

from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.common.write_keys import WriteKeyStore, hash_key
from retarget.devstack.paths import devstack_dir
from retarget.devstack.state import load_state, update_state

DEMO_WORKSPACE = Workspace(
    id="demo",
    name="Demo Outdoor Shop",
    from_name="Demo Outdoor Shop",
    from_email="hello@shop.example",
    reply_to="support@shop.example",
    postal_address="1 Demo Street, Springfield, 12345, USA",
    # the simulated shop's site (product pages, images) and the survey campaign's survey host
    link_domains=("shop.example", "survey.example.com"),
)


@dataclass(frozen=True)
class DemoCredentials:
    workspace_id: str
    write_key: str
    link_secret: str


async def ensure_demo_workspace(database_url: str) -> DemoCredentials:
    demo = load_state().get("demo", {})
    conn = await asyncpg.connect(database_url)
    try:
        await WorkspaceStore(conn).upsert(DEMO_WORKSPACE)
        keys = WriteKeyStore(conn)
        write_key = demo.get("write_key")
        # a key from an earlier run survives if the database does (devstack down/up keeps it)
        if not write_key or await keys.workspace_for(hash_key(write_key)) != DEMO_WORKSPACE.id:
            write_key = await keys.create(DEMO_WORKSPACE.id)
    finally:
        await conn.close()
    update_state(lambda s: s.__setitem__("demo", {"workspace_id": DEMO_WORKSPACE.id, "write_key": write_key}))
    return DemoCredentials(DEMO_WORKSPACE.id, write_key, _link_secret())


def _link_secret() -> str:
    """The demo's HMAC key for links: a file only its owner reads, never shown by `status`."""
    path = devstack_dir() / "secrets" / "link_secret"
    if not path.exists():
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        path.touch(mode=0o600)
        path.write_text(secrets.token_hex(32))
    return path.read_text().strip()
