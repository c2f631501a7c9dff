"""The browser SDKs' requests against a served ingest on the real Kafka and PostgreSQL: the
short paths, text/plain bodies with the write key inside, CORS by the workspace's origins."""

from __future__ import annotations

import json
from collections.abc import Awaitable, Callable
from typing import Any

import asyncpg
import httpx
import pytest

from retarget.ingest.settings import IngestSettings

from .conftest import EventReader, Tenant

pytestmark = pytest.mark.integration

SHOP = "http://127.0.0.1:8123"
PLAIN = {"Content-Type": "text/plain;charset=UTF-8"}


async def allow_origins(workspace_id: str, *origins: str) -> None:
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        await conn.execute(
            "UPDATE workspaces SET allowed_origins = $2 WHERE id = $1", workspace_id, list(origins)
        )
    finally:
        await conn.close()


@pytest.fixture
async def shop(tenant: Tenant) -> Tenant:
    await allow_origins(tenant.workspace_id, SHOP)
    return tenant


def analytics_next_track(write_key: str, message_id: str, **extra: Any) -> dict[str, Any]:
    """A track call as @segment/analytics-next sends it (its extra fields included)."""
    return {
        "type": "track",
        "event": "Product Added",
        "properties": {"product_id": "p-1", "price": 12.5},
        "anonymousId": "anon-browser-1",
        "messageId": message_id,
        "timestamp": "2026-01-05T10:00:00.000Z",
        "sentAt": "2026-01-05T10:00:00.200Z",
        "context": {
            "page": {"path": "/", "url": f"{SHOP}/", "title": "Shop", "referrer": "", "search": ""},
            "userAgent": "Mozilla/5.0",
            "library": {"name": "analytics.js", "version": "next-1.70.0"},
        },
        "integrations": {},
        "_metadata": {"bundled": ["Segment.io"], "unbundled": [], "bundledIds": []},
        "writeKey": write_key,
    } | extra


def comparable(event: Any) -> tuple[Any, ...]:
    return (event.type, event.event, event.anonymous_id, event.properties, event.context, event.integrations)


async def test_text_plain_events_land_exactly_as_json_ones_do(
    ingest_url: str, shop: Tenant, read_events: EventReader
) -> None:
    async with httpx.AsyncClient(base_url=ingest_url) as client:
        as_json = await client.post(
            "/v1/track", json=analytics_next_track(shop.write_key, "m-json"), auth=(shop.write_key, "")
        )
        as_beacon = await client.post(
            "/v1/t",
            content=json.dumps(analytics_next_track(shop.write_key, "m-plain")),
            headers=PLAIN | {"Origin": SHOP},
        )
    assert (as_json.status_code, as_beacon.status_code) == (200, 200)
    assert as_beacon.headers["access-control-allow-origin"] == SHOP and as_beacon.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in as_beacon.headers
    records = {event.message_id: (key, event) for key, event in await read_events(2)}
    (json_key, from_json), (plain_key, from_plain) = records["m-json"], records["m-plain"]
    assert json_key == plain_key == f"{shop.workspace_id}:anon-browser-1".encode()
    assert comparable(from_json) == comparable(from_plain)
    assert from_plain.context["page"]["url"] == f"{SHOP}/"  # context.page passes unchanged


async def test_text_plain_batches_on_batch_and_import(
    ingest_url: str, shop: Tenant, read_events: EventReader
) -> None:
    def batch(prefix: str) -> bytes:
        events = [analytics_next_track(shop.write_key, f"{prefix}-{i}") for i in range(2)]
        return json.dumps(
            {"batch": events, "writeKey": shop.write_key, "sentAt": "2026-01-05T10:00:01Z"}
        ).encode()

    async with httpx.AsyncClient(base_url=ingest_url, headers=PLAIN | {"Origin": SHOP}) as client:
        for path in ("/v1/batch", "/v1/import"):
            response = await client.post(path, content=batch(path.rsplit("/", 1)[1]))
            assert (response.status_code, response.json()) == (200, {"success": True})
            assert response.headers["access-control-allow-origin"] == SHOP
    ids = sorted(event.message_id for _, event in await read_events(4))
    assert ids == ["batch-0", "batch-1", "import-0", "import-1"]


async def test_preflight_for_an_allowed_and_an_unknown_origin(ingest_url: str, shop: Tenant) -> None:
    ask = {"Access-Control-Request-Method": "POST", "Access-Control-Request-Headers": "content-type"}
    async with httpx.AsyncClient(base_url=ingest_url) as client:
        allowed = await client.options("/v1/t", headers=ask | {"Origin": SHOP})
        unknown = await client.options("/v1/t", headers=ask | {"Origin": "https://unknown-shop.example"})
    assert allowed.status_code == 204
    assert (
        allowed.headers["access-control-allow-origin"],
        allowed.headers["access-control-allow-methods"],
    ) == (
        SHOP,
        "POST",
    )
    assert "Content-Type" in allowed.headers["access-control-allow-headers"]
    assert unknown.status_code == 403
    assert not [h for h in unknown.headers if h.startswith("access-control-")]


async def test_a_page_the_workspace_does_not_allow_is_refused_and_nothing_published(
    ingest_url: str,
    shop: Tenant,
    make_tenant: Callable[[], Awaitable[Tenant]],
    read_events: EventReader,
) -> None:
    other = await make_tenant()
    await allow_origins(other.workspace_id, "https://other-shop.example")
    async with httpx.AsyncClient(base_url=ingest_url, headers=PLAIN) as client:
        # another workspace's origin passes a preflight, but not this key's actual request
        refused = await client.post(
            "/v1/t",
            content=json.dumps(analytics_next_track(shop.write_key, "m-refused")),
            headers={"Origin": "https://other-shop.example"},
        )
        batch = {
            "batch": [analytics_next_track(shop.write_key, "m-refused-batch")],
            "writeKey": shop.write_key,
        }
        refused_batch = await client.post(
            "/v1/import", content=json.dumps(batch), headers={"Origin": "https://x.example"}
        )
        marker = await client.post(
            "/v1/t",
            content=json.dumps(analytics_next_track(shop.write_key, "m-marker")),
            headers={"Origin": SHOP},
        )
    assert (refused.status_code, refused.json()["code"]) == (403, "origin_not_allowed")
    assert refused_batch.status_code == 403 and marker.status_code == 200
    assert "access-control-allow-origin" not in refused.headers
    assert "access-control-allow-origin" not in refused_batch.headers
    assert [event.message_id for _, event in await read_events(1)] == [
        "m-marker"
    ]  # the first and only record


@pytest.mark.parametrize("path", ["/v1/t", "/v1/import"])
async def test_a_secret_key_in_write_key_is_refused_like_on_the_other_routes(
    ingest_url: str, shop: Tenant, secret_key: Callable[..., Awaitable[str]], path: str
) -> None:
    secret = await secret_key(shop.workspace_id, "privacy")
    event = analytics_next_track(secret, "m-secret")
    body = {"batch": [event], "writeKey": secret} if path == "/v1/import" else event
    async with httpx.AsyncClient(base_url=ingest_url) as client:
        response = await client.post(path, content=json.dumps(body), headers=PLAIN | {"Origin": SHOP})
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")
    assert "revoke" in response.json()["message"] and secret not in response.text


async def test_oversize_and_invalid_text_plain_bodies_are_4xx_naming_the_problem(
    ingest_url: str, shop: Tenant
) -> None:
    huge = analytics_next_track(shop.write_key, "m-huge", properties={"x": "y" * 40_000})
    async with httpx.AsyncClient(base_url=ingest_url, headers=PLAIN | {"Origin": SHOP}) as client:
        too_large = await client.post("/v1/t", content=json.dumps(huge))
        not_json = await client.post(
            "/v1/t", content=b'{"writeKey": "' + shop.write_key.encode() + b'", oops'
        )
        form = await client.post(
            "/v1/t", content=b"a=b", headers={"Content-Type": "application/x-www-form-urlencoded"}
        )
    assert (too_large.status_code, too_large.json()["code"]) == (413, "payload_too_large")
    assert (not_json.status_code, not_json.json()["code"]) == (400, "invalid_payload")
    assert "not valid JSON" in not_json.json()["message"]
    assert (form.status_code, form.json()["code"]) == (415, "unsupported_media_type")
    assert "text/plain" in form.json()["message"] and "application/json" in form.json()["message"]
    # the page may read why (its origin is allowed), so the SDK does not retry a 4xx blindly
    assert (
        too_large.headers["access-control-allow-origin"]
        == not_json.headers["access-control-allow-origin"]
        == SHOP
    )


async def test_the_write_key_s_rate_limit_applies_to_the_browser_path(
    ingest_settings: IngestSettings,
    serve: Callable[[IngestSettings], Any],
    shop: Tenant,
    read_events: EventReader,
) -> None:
    # 3 at once, then one every ~17 minutes: the 4th, whenever it comes, is over the limit
    settings = ingest_settings.model_copy(update={"rate_limit_burst": 3, "rate_limit_events_per_s": 0.001})
    async with (
        serve(settings) as url,
        httpx.AsyncClient(base_url=url, headers=PLAIN | {"Origin": SHOP}) as client,
    ):
        answers = [
            await client.post("/v1/t", content=json.dumps(analytics_next_track(shop.write_key, f"m-{i}")))
            for i in range(4)
        ]
    assert [a.status_code for a in answers] == [200, 200, 200, 429]
    assert answers[3].json()["code"] == "rate_limited" and "retry-after" in answers[3].headers
    assert sorted(event.message_id for _, event in await read_events(3)) == ["m-0", "m-1", "m-2"]


async def test_the_sdks_load_time_settings_for_a_real_write_key(ingest_url: str, shop: Tenant) -> None:
    async with httpx.AsyncClient(base_url=ingest_url, headers={"Origin": SHOP}) as client:
        segment = await client.get(f"/v1/projects/{shop.write_key}/settings")
        rudder = await client.get("/sourceConfig/", params={"writeKey": shop.write_key})
        unknown = await client.get("/v1/projects/wk_made_up/settings")
    assert segment.status_code == 200 and segment.headers["access-control-allow-origin"] == SHOP
    host = ingest_url.removeprefix("http://")
    segment_io = segment.json()["integrations"]["Segment.io"]
    assert (segment_io["apiHost"], segment_io["protocol"]) == (f"{host}/v1", "http")
    assert rudder.status_code == 200 and rudder.json()["source"]["destinations"] == []
    assert unknown.status_code == 404
