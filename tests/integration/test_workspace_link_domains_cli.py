"""`retarget workspace create --link-domain` against the real database: the domains land in
workspaces.link_domains (normalised), the default is the from domain, bad ones are refused."""

from __future__ import annotations

import os
import subprocess
import sys

import asyncpg
import pytest

from retarget.common.link_domains import allowed_link_domains
from retarget.common.workspaces import WorkspaceStore

pytestmark = pytest.mark.integration


def _create(workspace_id: str, *extra: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [
            *(sys.executable, "-m", "retarget.cli.main", "workspace", "create", "--id", workspace_id),
            *("--name", "Shop", "--from-email", "news@Shop.example", "--from-name", "Shop"),
            *("--postal-address", "1 Main St", *extra),
        ],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=60,
        check=False,
    )


async def test_link_domains_are_set_by_the_cli(stack: dict[str, str], workspace_id: str) -> None:
    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    try:
        store = WorkspaceStore(conn)
        made = _create(workspace_id, "--link-domain", " Shop.Example ", "--link-domain", "cdn.example")
        assert made.returncode == 0, made.stdout + made.stderr
        workspace = await store.get(workspace_id)
        assert workspace is not None and workspace.link_domains == ("shop.example", "cdn.example")

        assert _create(workspace_id).returncode == 0  # declarative: left out means the default
        workspace = await store.get(workspace_id)
        assert workspace is not None and workspace.link_domains is None
        assert allowed_link_domains(workspace) == ("shop.example",)

        refused = _create(workspace_id, "--link-domain", "evil.example/x")
        assert refused.returncode == 2 and "not a domain name" in refused.stdout
        workspace = await store.get(workspace_id)
        assert workspace is not None and workspace.link_domains is None  # unchanged
    finally:
        await conn.execute("DELETE FROM workspaces WHERE id = $1", workspace_id)
        await conn.close()
