"""Credentials on the real stack (ingest under uvicorn, PostgreSQL, Kafka): the privacy
endpoints take only a secret key with scope `privacy`; write keys, which sit in public
pages, only send events; made-up keys can't load PostgreSQL or flush the key cache."""

from __future__ import annotations

import asyncio
import secrets
import socket
import time
from collections.abc import AsyncIterator, Awaitable, Callable

import asyncpg
import httpx
import pytest
from prometheus_client import REGISTRY

from retarget.common.secret_keys import SecretKeyStore
from retarget.ingest.settings import IngestSettings

pytestmark = pytest.mark.integration

EXPORT, ERASE = "/v1/privacy/export", "/v1/privacy/erase"
NEEDED = {"credential": "secret_key", "scope": "privacy"}


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


@pytest.fixture
async def privacy_url(ingest_settings: IngestSettings, serve, monkeypatch) -> AsyncIterator[str]:
    """Ingest with no segmenter behind it: exports come back at once, with a note."""
    monkeypatch.setenv("RETARGET_SEGMENTER_URL", f"http://127.0.0.1:{closed_port()}")
    async with serve(ingest_settings) as url:
        yield url


@pytest.fixture
async def new_secret_key(stack) -> AsyncIterator[Callable[..., Awaitable[str]]]:
    conn = await asyncpg.connect(IngestSettings().database_url)

    async def create(workspace_id: str, *scopes: str) -> str:
        return await SecretKeyStore(conn).create(workspace_id, list(scopes), label="test")

    yield create
    await conn.close()


async def test_a_write_key_is_refused_naming_the_secret_key_it_needs(privacy_url, tenant) -> None:
    async with httpx.AsyncClient(base_url=privacy_url, auth=(tenant.write_key, "")) as client:
        assert (await client.post("/v1/track", json={"userId": "u", "event": "e"})).status_code == 200
        for path in (EXPORT, ERASE):
            response = await client.post(path, json={"email": "ann@example.com"})
            assert response.status_code == 403, response.text
            body = response.json()
            assert (body["code"], body["needed"]) == ("secret_key_required", NEEDED)
            assert (
                "write key" in body["message"]
                and "secret key (rt_sk_…) with scope `privacy`" in body["message"]
            )
        no_key = await client.post(EXPORT, json={"email": "ann@example.com"}, auth=None)
    assert (no_key.status_code, no_key.json()["needed"]) == (401, NEEDED)


async def test_a_secret_key_with_the_privacy_scope_exports_and_erases(
    privacy_url, tenant, new_secret_key
) -> None:
    key = await new_secret_key(tenant.workspace_id, "privacy")
    address = f"sk-{secrets.token_hex(4)}@example.com"
    async with httpx.AsyncClient(base_url=privacy_url, headers=bearer(key), timeout=30) as client:
        export = await client.post(EXPORT, json={"email": address})
        assert export.status_code == 200, export.text
        assert export.json()["workspace_id"] == tenant.workspace_id  # the key's workspace
        erase = await client.post(ERASE, json={"email": address, "workspaceId": "someone-else"})
        assert erase.status_code == 200, erase.text
        assert (erase.json()["workspace_id"], erase.json()["suppressed"]) == (tenant.workspace_id, 1)
    async with httpx.AsyncClient(base_url=privacy_url, auth=(key, "")) as client:  # Basic works too
        assert (await client.post(EXPORT, json={"email": address})).status_code == 200
        # and a secret key never sends events: it must not be in an SDK
        track = await client.post("/v1/track", json={"userId": "u", "event": "e"})
    assert track.status_code == 401 and "secret key" in track.json()["message"]


async def test_a_secret_key_without_the_privacy_scope_is_403(privacy_url, tenant, new_secret_key) -> None:
    key = await new_secret_key(tenant.workspace_id, "admin")
    async with httpx.AsyncClient(base_url=privacy_url, headers=bearer(key)) as client:
        response = await client.post(EXPORT, json={"userId": "u-1"})
    assert response.status_code == 403, response.text
    assert (response.json()["code"], response.json()["needed"]) == ("insufficient_scope", NEEDED)
    assert "has scope admin" in response.json()["message"]


async def test_a_revoked_secret_key_is_401(privacy_url, tenant, new_secret_key) -> None:
    from retarget.cli.main import main as cli

    key = await new_secret_key(tenant.workspace_id, "privacy", "admin")
    unknown = "rt_sk_" + secrets.token_urlsafe(24)
    async with httpx.AsyncClient(base_url=privacy_url) as client:
        assert (await client.post(EXPORT, json={"userId": "u"}, headers=bearer(key))).status_code == 200
        made_up = await client.post(EXPORT, json={"userId": "u"}, headers=bearer(unknown))
        assert (made_up.status_code, made_up.json()["code"]) == (401, "unauthorized")
        assert await asyncio.to_thread(cli, ["secret-key", "revoke", key[:14]]) == 0
        deadline = time.monotonic() + 30  # key_cache_ttl_s is 0.5 in these tests
        while True:
            response = await client.post(EXPORT, json={"userId": "u"}, headers=bearer(key))
            if response.status_code != 200 or time.monotonic() > deadline:
                break
            await asyncio.sleep(0.2)
    assert response.status_code == 401, response.text
    assert "revoked" in response.json()["message"] and response.json()["needed"] == NEEDED


def lookups(credential: str, outcome: str) -> float:
    value = REGISTRY.get_sample_value(
        "retarget_ingest_key_lookups_total", {"credential": credential, "outcome": outcome}
    )
    return value or 0.0


async def test_a_spray_of_made_up_keys_costs_bounded_queries_and_keeps_valid_keys_cached(
    ingest_settings: IngestSettings, serve, tenant
) -> None:
    burst, spray = 20, 400
    settings = ingest_settings.model_copy(
        update={
            "key_cache_ttl_s": 600.0,  # the valid key stays cached for the whole test
            "key_cache_max_entries": 5,  # fewer than the misses looked up: they must not flush it
            "key_cold_lookups_per_s": 0.001,  # no refill within the test: the burst is the bound
            "key_cold_lookup_burst": burst,
        }
    )
    body = {"userId": "u", "event": "Product Viewed"}
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=30) as client:
        valid = await client.post("/v1/track", json=body, auth=(tenant.write_key, ""))
        assert valid.status_code == 200, valid.text
        found, unknown = lookups("write_key", "found"), lookups("write_key", "unknown")

        async def attacker(start: int) -> list[int]:
            codes = []
            for _ in range(start, spray, 8):
                key = f"wk_{secrets.token_urlsafe(24)}"
                codes.append((await client.post("/v1/track", json=body, auth=(key, ""))).status_code)
            return codes

        codes = [code for part in await asyncio.gather(*(attacker(i) for i in range(8))) for code in part]
        assert len(codes) == spray and set(codes) <= {401, 429}, sorted(set(codes))  # never a 5xx
        assert lookups("write_key", "unknown") - unknown <= burst
        assert codes.count(429) >= spray - burst and lookups("write_key", "shed") > 0

        still = await client.post("/v1/track", json=body, auth=(tenant.write_key, ""))
        assert still.status_code == 200, still.text
        assert lookups("write_key", "found") == found  # served from the cache, no query
