"""The demo's coupons key (the demo shop's backend redeems codes with it) on the real
PostgreSQL: scope coupons only, kept in a private file, reused while the database knows it."""

from __future__ import annotations

import asyncpg
import pytest

from retarget.common.secret_keys import SecretKeyStore
from retarget.common.workspaces import WorkspaceStore
from retarget.common.write_keys import hash_key
from retarget.demo.workspace import DEMO_WORKSPACE, _scoped_key

pytestmark = pytest.mark.integration


async def test_the_demo_shops_coupons_key_can_only_do_coupons(stack, tmp_path, monkeypatch) -> None:
    monkeypatch.setenv("RETARGET_DEVSTACK_DIR", str(tmp_path))  # not the running stack's secrets
    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    try:
        await WorkspaceStore(conn).upsert(DEMO_WORKSPACE)
        store = SecretKeyStore(conn)
        key = await _scoped_key(store, "coupons", "test")
        path = tmp_path / "secrets" / "coupons_key"
        assert path.read_text() == key and path.stat().st_mode & 0o077 == 0
        grant = await store.grant_for(hash_key(key))
        assert grant is not None and grant.workspace_id == "demo" and grant.scopes == {"coupons"}
        assert await _scoped_key(store, "coupons", "test") == key  # the next run reuses it
        await store.revoke(key)  # leave no live key behind in the shared database
    finally:
        await conn.close()
