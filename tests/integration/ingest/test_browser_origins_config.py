"""A workspace's allowed origins through every way of setting them, on the real stack: the
management API's identity PUT, `retarget workspace create --allowed-origin` and `retarget
workspace set-origins`; a served ingest follows each change within its cache TTL."""

from __future__ import annotations

import asyncio
import os
import subprocess
import sys
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from retarget.common.workspaces import WorkspaceStore
from retarget.ingest.settings import IngestSettings

from .conftest import Tenant

pytestmark = pytest.mark.integration

IDENTITY = {
    "from_name": "Shop",
    "from_email": "shop@example.com",
    "postal_address": "1 Test Street, Testville",
}


def cli(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retarget.cli.main", *args],
        capture_output=True,
        text=True,
        env=os.environ.copy(),
        timeout=120,
        check=False,
    )


async def origins_of(workspace_id: str) -> tuple[str, ...]:
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        workspace = await WorkspaceStore(conn).get(workspace_id)
    finally:
        await conn.close()
    assert workspace is not None
    return workspace.allowed_origins


async def status_within(client: httpx.AsyncClient, origin: str, key: str, wanted: int) -> int:
    """Post from `origin` until the answer is `wanted` (the cache's TTL), for at most 30 s."""
    status = 0
    async with asyncio.timeout(30):
        while status != wanted:
            body = {"writeKey": key, "anonymousId": "a", "event": "E"}
            status = (await client.post("/v1/t", json=body, headers={"Origin": origin})).status_code
            if status != wanted:
                await asyncio.sleep(0.2)
    return status


async def test_identity_put_sets_origins_and_refuses_a_bare_star(
    ingest_settings: IngestSettings,
    serve: Callable[[IngestSettings], Any],
    tenant: Tenant,
    secret_key: Callable[..., Awaitable[str]],
) -> None:
    settings = ingest_settings.model_copy(update={"origins_cache_s": 0.5})
    identity = f"/v1/workspaces/{tenant.workspace_id}/identity"
    admin = {"Authorization": f"Bearer {await secret_key(tenant.workspace_id, 'admin')}"}
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
        assert await status_within(client, "https://shop.example", tenant.write_key, 403) == 403
        put = await client.put(
            identity, json=IDENTITY | {"allowed_origins": ["HTTPS://Shop.Example/"]}, headers=admin
        )
        assert put.status_code == 200, put.text
        assert put.json()["body"]["allowed_origins"] == ["https://shop.example"]
        assert await origins_of(tenant.workspace_id) == ("https://shop.example",)
        assert await status_within(client, "https://shop.example", tenant.write_key, 200) == 200

        star = await client.put(identity, json=IDENTITY | {"allowed_origins": ["*"]}, headers=admin)
        assert (star.status_code, star.json()["code"]) == (422, "invalid_config")
        assert "allowed_origins" in star.text and "refused" in star.text
        assert await origins_of(tenant.workspace_id) == ("https://shop.example",)  # nothing stored


async def test_cli_create_and_set_origins(stack: dict[str, str], workspace_id: str) -> None:
    base = (
        "workspace",
        "create",
        "--id",
        workspace_id,
        "--name",
        "Shop",
        "--from-email",
        "news@shop.example",
    )
    base += ("--from-name", "Shop", "--postal-address", "1 Main St")
    try:
        made = cli(
            *base, "--allowed-origin", "http://127.0.0.1:8123", "--allowed-origin", "https://*.Shop.example"
        )
        assert made.returncode == 0, made.stdout + made.stderr
        assert await origins_of(workspace_id) == ("http://127.0.0.1:8123", "https://*.shop.example")

        refused = cli(*base, "--allowed-origin", "*")
        assert refused.returncode == 2 and "refused" in refused.stdout
        assert await origins_of(workspace_id) == ("http://127.0.0.1:8123", "https://*.shop.example")

        changed = cli("workspace", "set-origins", "--id", workspace_id, "https://shop.example:8443")
        assert changed.returncode == 0, changed.stdout + changed.stderr
        assert await origins_of(workspace_id) == ("https://shop.example:8443",)

        bad = cli("workspace", "set-origins", "--id", workspace_id, "https://shop.example/path")
        assert bad.returncode == 1 and "allowed_origins" in bad.stderr
        assert await origins_of(workspace_id) == ("https://shop.example:8443",)

        cleared = cli("workspace", "set-origins", "--id", workspace_id)
        assert cleared.returncode == 0 and await origins_of(workspace_id) == ()

        missing = cli("workspace", "set-origins", "--id", f"{workspace_id}-none", "https://a.example")
        assert missing.returncode == 1 and "no workspace" in missing.stderr
    finally:
        conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
        await conn.execute("DELETE FROM config_versions WHERE workspace_id = $1", workspace_id)
        await conn.execute("DELETE FROM workspaces WHERE id = $1", workspace_id)
        await conn.close()
