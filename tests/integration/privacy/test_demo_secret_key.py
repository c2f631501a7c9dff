"""The demo's secret key (scope privacy) on the real PostgreSQL: kept in a file only its owner
reads, reused while the database knows it, replaced when it was revoked."""

from __future__ import annotations

import asyncpg
import pytest

from retarget.common.secret_keys import SecretKeyStore
from retarget.common.workspaces import WorkspaceStore
from retarget.common.write_keys import hash_key
from retarget.demo.workspace import DEMO_WORKSPACE, _privacy_key

pytestmark = pytest.mark.integration


async def test_the_demo_keeps_its_secret_key_in_a_private_file(stack, tmp_path, monkeypatch):
    monkeypatch.setenv("RETARGET_DEVSTACK_DIR", str(tmp_path))  # not the running stack's secrets
    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    try:
        await WorkspaceStore(conn).upsert(DEMO_WORKSPACE)
        store = SecretKeyStore(conn)
        key = await _privacy_key(store)
        path = tmp_path / "secrets" / "privacy_key"
        assert path.read_text() == key and path.stat().st_mode & 0o077 == 0  # the owner's alone
        grant = await store.grant_for(hash_key(key))
        assert grant is not None and grant.workspace_id == "demo" and grant.scopes == {"privacy"}

        assert await _privacy_key(store) == key  # the next run reuses it
        await store.revoke(key)
        replaced = await _privacy_key(store)
        assert replaced != key and path.read_text() == replaced
        await store.revoke(replaced)  # leave no live key behind in the shared database
    finally:
        await conn.close()
