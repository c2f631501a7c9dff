"""`retarget secret-key create|list|revoke` against the real PostgreSQL."""

from __future__ import annotations

import asyncio

import asyncpg
import pytest

from retarget.cli.main import main as cli
from retarget.common.secret_keys import SecretKeyStore, UnknownScope
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.common.write_keys import hash_key

pytestmark = pytest.mark.integration


async def run(*argv: str) -> int:
    return await asyncio.to_thread(cli, list(argv))


async def test_create_shows_the_key_once_list_never_shows_it_revoke_ends_it(stack, workspace_id, capsys):
    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    try:
        await WorkspaceStore(conn).upsert(
            Workspace(workspace_id, "Keys", "Shop", "shop@example.com", postal_address="1 Test St")
        )
        assert await run("secret-key", "create", "--workspace", workspace_id, "--scope", "privacy") == 0
        created = capsys.readouterr()
        key = created.out.strip()
        assert key.startswith("rt_sk_") and len(key) == 38 and "\n" not in key  # stdout: the key alone
        assert "SECRET" in created.err and "shown only this once" in created.err

        grant = await SecretKeyStore(conn).grant_for(hash_key(key))
        assert grant is not None and (grant.workspace_id, grant.scopes) == (workspace_id, {"privacy"})
        stored = await conn.fetchrow("SELECT * FROM secret_keys WHERE workspace_id = $1", workspace_id)
        assert key not in {str(v) for v in stored.values()}  # only the hash and a prefix are kept

        assert await run("secret-key", "list", "--workspace", workspace_id) == 0
        listing = capsys.readouterr().out
        assert key[:14] in listing and key not in listing and "privacy" in listing and "active" in listing

        assert await run("secret-key", "revoke", key[:14]) == 0
        assert "revoked" in capsys.readouterr().out
        assert await SecretKeyStore(conn).grant_for(hash_key(key)) is None
        assert await run("secret-key", "list", "--workspace", workspace_id) == 0
        assert "revoked" in capsys.readouterr().out
    finally:
        await conn.close()


async def test_create_refuses_an_unknown_workspace_or_scope(stack, workspace_id, capsys):
    assert await run("secret-key", "create", "--workspace", workspace_id, "--scope", "privacy") == 1
    assert "no workspace" in capsys.readouterr().out
    with pytest.raises(SystemExit):  # argparse: the scope must be one of privacy, admin
        await run("secret-key", "create", "--workspace", workspace_id, "--scope", "everything")


async def test_the_store_refuses_scopes_it_does_not_know(stack, workspace_id):
    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    try:
        await WorkspaceStore(conn).upsert(
            Workspace(workspace_id, "Keys", "Shop", "shop@example.com", postal_address="1 Test St")
        )
        for scopes in (["everything"], [], ["privacy", "root"]):
            with pytest.raises(UnknownScope):
                await SecretKeyStore(conn).create(workspace_id, scopes)
        assert (
            await conn.fetchval("SELECT count(*) FROM secret_keys WHERE workspace_id = $1", workspace_id) == 0
        )
    finally:
        await conn.close()
