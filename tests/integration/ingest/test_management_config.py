"""The configuration routes on the real stack: the change feed's offsets on the real broker,
the OpenAPI document of a served ingest, and (once retarget.config's ConfigService is
there) the campaign round trip through PostgreSQL and the feed."""

from __future__ import annotations

import socket
import uuid

import asyncpg
import httpx
import pytest

from retarget.ingest.settings import IngestSettings

from .conftest import ops_url

pytestmark = pytest.mark.integration


def bearer(key: str) -> dict[str, str]:
    return {"Authorization": f"Bearer {key}"}


async def test_the_openapi_document_lists_the_management_routes(ingest_settings, ingest_url) -> None:
    async with httpx.AsyncClient(base_url=ops_url(ingest_settings), timeout=30) as client:
        paths = (await client.get("/openapi.json")).json()["paths"]
    for path in (
        "/v1/workspaces/{workspace_id}/campaigns",
        "/v1/workspaces/{workspace_id}/campaigns/{name}",
        "/v1/workspaces/{workspace_id}/campaigns/{name}:validate",
        "/v1/workspaces/{workspace_id}/templates/{name}/preview",
        "/v1/workspaces/{workspace_id}/policy",
        "/v1/workspaces/{workspace_id}/identity",
        "/v1/workspaces/{workspace_id}/suppressions",
        "/v1/workspaces/{workspace_id}/config/live",
    ):
        assert path in paths, path
    assert set(paths["/v1/workspaces/{workspace_id}/campaigns/{name}"]) == {"get", "put", "delete"}


@pytest.fixture
def config_service_installed() -> None:
    pytest.importorskip(
        "retarget.config.service", reason="retarget.config's ConfigService (issue #14, core M2)"
    )


async def test_campaign_round_trip_with_versions_history_and_the_feed(
    config_service_installed, ingest_settings, ingest_url, tenant, secret_key
) -> None:
    campaigns = f"/v1/workspaces/{tenant.workspace_id}/campaigns"
    async with httpx.AsyncClient(base_url=ingest_url, timeout=60) as client:
        client.headers.update(bearer(await secret_key(tenant.workspace_id, "admin")))
        listed = (await client.get(campaigns)).json()["campaigns"]
        assert {c["source"] for c in listed} == {"default"} and "abandoned_cart" in {
            c["name"] for c in listed
        }
        bundled = (await client.get(f"{campaigns}/abandoned_cart")).json()["body"]

        first = await client.put(f"{campaigns}/winback", json=bundled | {"name": "winback"})
        assert first.status_code == 200, first.text
        disabled = await client.post(f"{campaigns}/winback/disable")
        assert disabled.status_code == 200, disabled.text
        assert disabled.json()["version"] > first.json()["version"]
        one = (await client.get(f"{campaigns}/winback", params={"history": "true"})).json()
        assert one["enabled"] is False
        assert [v["version"] for v in one["history"]] == [disabled.json()["version"], first.json()["version"]]

        deleted = await client.delete(f"{campaigns}/abandoned_cart")
        assert deleted.status_code == 200, deleted.text
        names = {c["name"] for c in (await client.get(campaigns)).json()["campaigns"]}
        assert "abandoned_cart" not in names and "winback" in names

    published = await _published(tenant.workspace_id)
    assert published[("campaign", "winback")][0] == disabled.json()["version"]
    assert published[("campaign", "abandoned_cart")][0] == deleted.json()["version"]
    assert all(offset is not None for _, offset in published.values())  # on the feed


async def _published(workspace_id: str) -> dict[tuple[str, str], tuple[int, int | None]]:
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        rows = await conn.fetch(
            "SELECT kind, name, version, feed_offset FROM config_current WHERE workspace_id = $1",
            workspace_id,
        )
    finally:
        await conn.close()
    return {(r["kind"], r["name"]): (r["version"], r["feed_offset"]) for r in rows}


async def test_live_compares_each_instances_applied_offset_with_the_versions_feed_offsets(
    ingest_url, tenant, secret_key
) -> None:
    base = f"/v1/workspaces/{tenant.workspace_id}"
    service = f"test-{uuid.uuid4().hex[:8]}"
    async with httpx.AsyncClient(base_url=ingest_url, timeout=60) as client:
        client.headers.update(bearer(await secret_key(tenant.workspace_id, "admin")))
        for _ in range(2):
            assert (await client.post(f"{base}/campaigns/abandoned_cart/disable")).status_code == 200
        offset = (await _published(tenant.workspace_id))[("campaign", "abandoned_cart")][1]
        assert offset is not None
        conn = await asyncpg.connect(IngestSettings().database_url)
        try:
            await conn.executemany(
                "INSERT INTO config_applied (service, instance, feed_offset) VALUES ($1, $2, $3)",
                [(service, "behind", offset - 1), (service, "caught-up", offset)],
            )
            live = (await client.get(f"{base}/config/live")).json()["instances"]
        finally:
            await conn.execute("DELETE FROM config_applied WHERE service = $1", service)
            await conn.close()
    mine = {i["instance"]: i for i in live if i["service"] == service}
    assert (mine["behind"]["all_live"], mine["caught-up"]["all_live"]) == (False, True)
    assert [v["name"] for v in mine["behind"]["versions"]] == ["abandoned_cart"]


async def test_an_invalid_campaign_is_a_422_naming_the_field_and_stores_nothing(
    config_service_installed, ingest_url, tenant, secret_key
) -> None:
    campaigns = f"/v1/workspaces/{tenant.workspace_id}/campaigns"
    async with httpx.AsyncClient(base_url=ingest_url, timeout=60) as client:
        client.headers.update(bearer(await secret_key(tenant.workspace_id, "admin")))
        bundled = (await client.get(f"{campaigns}/abandoned_cart")).json()["body"]
        bad = await client.put(f"{campaigns}/broken", json=bundled | {"name": "broken", "wait": "soon"})
        assert bad.status_code == 422, bad.text
        assert bad.json()["code"] == "invalid_config" and "wait" in bad.json()["message"]
        assert bad.json()["field"] == "wait"
        assert (await client.get(f"{campaigns}/broken")).status_code == 404
        for name in ("Broken", "café", "a" * 65):
            refused = await client.put(f"{campaigns}/{name}", json=bundled)
            assert (refused.status_code, refused.json()["field"]) == (422, "name")
        huge = await client.put(f"{campaigns}/huge", content=b'{"x": "' + b"x" * 600_000 + b'"}')
        assert huge.status_code == 413


async def test_preview_renders_a_draft_and_the_bundled_template_through_the_composer(
    config_service_installed, ingest_url, tenant, secret_key
) -> None:
    pytest.importorskip(
        "retarget.composer.preview", reason="the composer's preview renderer (issue #14, compcfg)"
    )
    templates = f"/v1/workspaces/{tenant.workspace_id}/templates"
    async with httpx.AsyncClient(base_url=ingest_url, timeout=60) as client:
        client.headers.update(bearer(await secret_key(tenant.workspace_id, "admin")))
        name = (await client.get(templates)).json()["templates"][0]["name"]
        bundled = await client.post(f"{templates}/{name}/preview")
        assert bundled.status_code == 200, bundled.text
        assert bundled.json()["subject"] and (bundled.json()["html"] or bundled.json()["text"])
        draft = {"subject": "Hello from the draft", "html": "<p>Draft body</p>", "text": "Draft body"}
        rendered = await client.post(f"{templates}/{name}/preview", json={"draft": draft})
        assert rendered.status_code == 200, rendered.text
        assert rendered.json()["subject"] == "Hello from the draft"
        assert "Draft body" in rendered.json()["html"]
        broken = await client.post(
            f"{templates}/{name}/preview", json={"draft": draft | {"html": "{% if %}"}}
        )
        assert broken.status_code == 422 and broken.json()["code"] == "invalid_config"
        assert (await client.get(f"{templates}/{name}", params={"history": "true"})).json()["history"] == []


async def test_the_preview_adapter_renders_through_the_composer_with_the_workspaces_identity(
    ingest_settings, tenant
) -> None:
    pytest.importorskip(
        "retarget.composer.preview", reason="the composer's preview renderer (issue #14, compcfg)"
    )
    from retarget.common.privacy_requests import FoundProfiles
    from retarget.ingest.management.wiring import management
    from retarget.ingest.pool import LazyPool

    class NoProfiles:
        async def find(self, person: object) -> FoundProfiles:
            return FoundProfiles([])

    pool = LazyPool(ingest_settings)
    try:
        m = management(ingest_settings, pool, NoProfiles())
        name = sorted(m.bundled("template"))[0]
        draft = {"subject": "Hello from the draft", "html": "<p>Draft body</p>", "text": None}
        rendered = await m.render(tenant.workspace_id, name, draft, None)
        assert rendered["subject"] == "Hello from the draft" and "Draft body" in (rendered["html"] or "")
        with pytest.raises(ValueError, match="html"):
            await m.render(tenant.workspace_id, name, draft | {"html": "{% if %}"}, None)
    finally:
        await pool.close()


async def test_kafka_away_is_a_503_with_retry_after_and_nothing_is_stored(
    ingest_settings, serve, tenant, secret_key
) -> None:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        closed = s.getsockname()[1]  # nothing listens there once the socket is closed
    settings = ingest_settings.model_copy(
        update={"kafka_bootstrap": f"127.0.0.1:{closed}", "kafka_connect_wait_s": 1}
    )
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, timeout=60) as client:
        client.headers.update(bearer(await secret_key(tenant.workspace_id, "admin")))
        response = await client.post(f"/v1/workspaces/{tenant.workspace_id}/campaigns/abandoned_cart/disable")
    assert response.status_code == 503, response.text
    assert int(response.headers["Retry-After"]) >= 1 and response.json()["code"] == "unavailable"
    assert await _published(tenant.workspace_id) == {}
