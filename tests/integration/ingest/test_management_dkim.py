"""The DKIM routes on the real stack (PostgreSQL, Kafka): generation, rotation, listing, the
admin-key rules, bad input as 4xx, and private keys that never leave sealed."""

from __future__ import annotations

import asyncpg
import httpx
import pytest

from retarget.ingest.settings import IngestSettings

from .conftest import ops_url

pytestmark = pytest.mark.integration


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def stored_bodies(workspace_id: str) -> list[str]:
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        rows = await conn.fetch(
            "SELECT body::text AS body FROM config_versions WHERE workspace_id = $1", workspace_id
        )
        return [r["body"] for r in rows]
    finally:
        await conn.close()


@pytest.fixture
async def forget_config(tenant):
    yield
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        await conn.execute("DELETE FROM config_versions WHERE workspace_id = $1", tenant.workspace_id)
    finally:
        await conn.close()


async def test_generate_rotate_and_list_never_showing_a_private_key(
    ingest_url, tenant, secret_key, forget_config
) -> None:
    path = f"/v1/workspaces/{tenant.workspace_id}/dkim"
    async with httpx.AsyncClient(base_url=ingest_url, timeout=60) as client:
        client.headers.update(bearer(await secret_key(tenant.workspace_id, "admin")))
        assert (await client.get(path)).json() == {"keys": []}
        first = await client.post(path)
        assert first.status_code == 201, first.text
        made = first.json()
        assert sorted(k["algorithm"] for k in made["keys"]) == ["ed25519", "rsa"]
        assert {k["domain"] for k in made["keys"]} == {"example.com"}  # the From address's domain
        assert made["retiring"] == [] and len(made["dns_records"]) == 2
        assert all(r.split(" TXT ")[0].endswith("._domainkey.example.com") for r in made["dns_records"])

        second = await client.post(path, params={"algorithm": "ed25519", "selector": "s2"})
        assert second.status_code == 201, second.text
        assert [k["selector"] for k in second.json()["keys"]] == ["s2"]
        assert sorted(k["selector"] for k in second.json()["retiring"]) == sorted(
            k["selector"] for k in made["keys"]
        )

        listed = (await client.get(path)).json()["keys"]
        assert {k["selector"]: k["state"] for k in listed} == {
            **{k["selector"]: "retiring" for k in made["keys"]},
            "s2": "active",
        }
        reused = await client.post(path, params={"algorithm": "rsa", "selector": "s2"})
        assert reused.status_code == 422 and reused.json()["field"] == "name", reused.text
        answers = first.text + second.text + (await client.get(path)).text
    assert "aesgcm1" not in answers and "PRIVATE" not in answers
    bodies = await stored_bodies(tenant.workspace_id)
    assert len(bodies) == 5  # 2 keys, 1 key, 2 retiring versions: the refused reuse stored nothing
    assert all("aesgcm1:" in b and "PRIVATE KEY" not in b for b in bodies)


@pytest.mark.parametrize(
    ("params", "status", "field"),
    [
        ({"algorithm": "dsa"}, 422, None),
        ({"selector": "Not A Label!"}, 422, "name"),
        ({"domain": "not a domain"}, 422, "domain"),
        ({"selector": "x" * 300, "algorithm": "ed25519"}, 422, "name"),
        ({"selector": "x" * 60}, 422, "name"),  # x…x-ed fits a DNS label, x…x-rsa does not: neither stored
        ({"selector": "s1\n", "algorithm": "ed25519"}, 422, "name"),  # into DKIM-Signature's s= and DNS
        ({"domain": "shop.example\n"}, 422, "domain"),
    ],
)
async def test_bad_input_is_a_4xx_naming_the_field_and_stores_nothing(
    ingest_url, tenant, secret_key, forget_config, params, status, field
) -> None:
    async with httpx.AsyncClient(base_url=ingest_url, timeout=60) as client:
        client.headers.update(bearer(await secret_key(tenant.workspace_id, "admin")))
        answer = await client.post(f"/v1/workspaces/{tenant.workspace_id}/dkim", params=params)
    assert answer.status_code == status, answer.text
    if field:
        assert answer.json()["field"] == field, answer.text
    assert await stored_bodies(tenant.workspace_id) == []


async def test_only_the_workspaces_admin_key_may_generate_or_list(
    ingest_url, make_tenant, tenant, secret_key, forget_config
) -> None:
    other = await make_tenant()
    path = f"/v1/workspaces/{tenant.workspace_id}/dkim"
    credentials = {
        "none": ({}, 401),
        "write key": ({"Authorization": f"Bearer {tenant.write_key}"}, 403),
        "privacy key": (bearer(await secret_key(tenant.workspace_id, "privacy")), 403),
        "other workspace's admin key": (bearer(await secret_key(other.workspace_id, "admin")), 403),
    }
    async with httpx.AsyncClient(base_url=ingest_url, timeout=60) as client:
        for name, (headers, status) in credentials.items():
            for method in ("GET", "POST"):
                answer = await client.request(method, path, headers=headers)
                assert answer.status_code == status, (name, method, answer.text)
    assert await stored_bodies(tenant.workspace_id) == []


async def test_without_the_seal_key_generation_is_a_503_and_stores_nothing(
    ingest_url, tenant, secret_key, forget_config, monkeypatch
) -> None:
    monkeypatch.setenv("RETARGET_CONFIG_SEAL_KEY_FILE", "")
    monkeypatch.delenv("RETARGET_CONFIG_SEAL_KEY", raising=False)
    async with httpx.AsyncClient(base_url=ingest_url, timeout=60) as client:
        client.headers.update(bearer(await secret_key(tenant.workspace_id, "admin")))
        answer = await client.post(f"/v1/workspaces/{tenant.workspace_id}/dkim")
    assert answer.status_code == 503 and "seal key" in answer.text and "Retry-After" in answer.headers
    assert await stored_bodies(tenant.workspace_id) == []


async def test_the_openapi_document_lists_the_dkim_routes(ingest_settings, ingest_url) -> None:
    async with httpx.AsyncClient(base_url=ops_url(ingest_settings), timeout=30) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    assert set(paths["/v1/workspaces/{workspace_id}/dkim"]) == {"get", "post"}
