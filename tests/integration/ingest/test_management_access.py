"""Who may use the management API, on the real stack (ingest under uvicorn, PostgreSQL):
only a secret key with scope `admin` of the workspace in the path; the key is judged
before the body, and another workspace's key learns nothing about what exists."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from retarget.common.secret_keys import SecretKeyStore
from retarget.ingest.settings import IngestSettings

pytestmark = pytest.mark.integration


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_only_the_workspaces_admin_key_gets_in(ingest_url, make_tenant, secret_key) -> None:
    shop, other = await make_tenant(), await make_tenant()
    admin = await secret_key(shop.workspace_id, "admin")
    revoked = await secret_key(shop.workspace_id, "admin")
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        await SecretKeyStore(conn).revoke(revoked[:14])
    finally:
        await conn.close()
    refused = {
        "no key": ({}, 401, "unauthorized"),
        "revoked admin key": (bearer(revoked), 401, "unauthorized"),
        "unknown key": (bearer("rt_sk_" + "x" * 32), 401, "unauthorized"),
        "write key": (bearer(shop.write_key), 403, "secret_key_required"),
        "privacy key": (bearer(await secret_key(shop.workspace_id, "privacy")), 403, "insufficient_scope"),
        "other workspace's admin key": (
            bearer(await secret_key(other.workspace_id, "admin")),
            403,
            "wrong_workspace",
        ),
    }
    base = f"/v1/workspaces/{shop.workspace_id}"
    requests = [
        ("GET", f"{base}/suppressions?email=ann@example.com"),
        ("POST", f"{base}/suppressions"),
        ("DELETE", f"{base}/suppressions?email=ann@example.com"),
        ("GET", f"{base}/campaigns"),
        ("PUT", f"{base}/campaigns/winback"),
        ("PUT", f"{base}/policy"),
        ("POST", f"{base}/templates/cart/preview"),
        ("GET", f"{base}/reputation"),
        ("POST", f"{base}/pause"),
        ("POST", f"{base}/resume"),
    ]
    async with httpx.AsyncClient(base_url=ingest_url, timeout=30) as client:
        for what, (headers, status, code) in refused.items():
            for method, path in requests:
                response = await client.request(method, path, content=b"{not json", headers=headers)
                assert (response.status_code, response.json()["code"]) == (status, code), (what, method, path)
        ok = await client.get(
            f"{base}/suppressions", params={"email": "ann@example.com"}, headers=bearer(admin)
        )
    assert ok.status_code == 200, ok.text
    assert ok.json()["suppressed"] is False


async def test_another_workspaces_key_cannot_tell_what_exists(ingest_url, make_tenant, secret_key) -> None:
    shop, other = await make_tenant(), await make_tenant()
    outsider = bearer(await secret_key(other.workspace_id, "admin"))
    async with httpx.AsyncClient(base_url=ingest_url, timeout=30, headers=outsider) as client:
        answers = [
            await client.get(f"/v1/workspaces/{shop.workspace_id}/campaigns/abandoned_cart"),
            await client.get(f"/v1/workspaces/{shop.workspace_id}/campaigns/no_such_campaign"),
            await client.get("/v1/workspaces/no-such-workspace/campaigns/abandoned_cart"),
        ]
    assert {(a.status_code, a.text) for a in answers} == {(answers[0].status_code, answers[0].text)}
    assert answers[0].status_code == 403
