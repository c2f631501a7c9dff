"""The browser SDKs' requests through the ASGI app, with fakes for Kafka and PostgreSQL: short
paths, text/plain bodies, CORS by the key's workspace, preflights by any workspace."""

from __future__ import annotations

import json
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest

from retarget.common.testing import FakeClock
from retarget.ingest.bootstrap import bootstrap
from retarget.ingest.main import create_app
from retarget.ingest.settings import IngestSettings
from retarget.ingest.testing import FakeKeys, FakeOrigins, FakePublisher

KEY, OTHER_KEY = "wk_shop", "wk_other"
SHOP, OTHER_SHOP = "https://shop.example", "https://other.example"
PLAIN = {"Content-Type": "text/plain;charset=UTF-8"}


@dataclass
class Browser:
    client: httpx.AsyncClient
    publisher: FakePublisher
    origins: FakeOrigins


@pytest.fixture
async def browser() -> AsyncIterator[Browser]:
    settings = IngestSettings(topic_prefix="unit", rate_limit_events_per_s=1, rate_limit_burst=5)
    publisher = FakePublisher()
    origins = FakeOrigins({"ws1": (SHOP,), "ws2": (OTHER_SHOP,)})
    services = bootstrap(
        settings,
        publisher=publisher,
        key_lookup=FakeKeys({KEY: "ws1", OTHER_KEY: "ws2"}),
        origins=origins,
        clock=FakeClock(),
        monotonic=lambda: 0.0,  # time stands still: the rate limit's bucket never refills
    )
    transport = httpx.ASGITransport(app=create_app(settings, services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        yield Browser(client, publisher, origins)


def event(**fields: object) -> bytes:
    return json.dumps({"writeKey": KEY, "anonymousId": "a1", "event": "Viewed"} | fields).encode()


@pytest.mark.parametrize(("path", "kind"), [("/v1/t", "track"), ("/v1/p", "page"), ("/v1/i", "identify")])
async def test_short_paths_take_text_plain_with_the_key_in_the_body(
    browser: Browser, path: str, kind: str
) -> None:
    response = await browser.client.post(path, content=event(), headers=PLAIN | {"Origin": SHOP})
    assert (response.status_code, response.json()) == (200, {"success": True})
    assert response.headers["access-control-allow-origin"] == SHOP
    assert response.headers["vary"] == "Origin"
    assert "access-control-allow-credentials" not in response.headers
    assert json.loads(browser.publisher.sent[0][2])["type"] == kind


async def test_an_origin_of_another_workspace_is_refused_and_nothing_published(browser: Browser) -> None:
    response = await browser.client.post("/v1/t", content=event(), headers=PLAIN | {"Origin": OTHER_SHOP})
    assert (response.status_code, response.json()["code"]) == (403, "origin_not_allowed")
    assert "access-control-allow-origin" not in response.headers
    assert browser.publisher.sent == []


@pytest.mark.parametrize("path", ["/v1/import", "/v1/b"])
async def test_import_and_b_are_batches_and_check_the_origin_too(browser: Browser, path: str) -> None:
    body = json.dumps({"writeKey": KEY, "batch": [{"type": "track", "anonymousId": "a", "event": "E"}]})
    refused = await browser.client.post(path, content=body, headers=PLAIN | {"Origin": OTHER_SHOP})
    assert refused.status_code == 403 and browser.publisher.sent == []
    accepted = await browser.client.post(path, content=body, headers=PLAIN | {"Origin": SHOP})
    assert accepted.status_code == 200 and len(browser.publisher.sent) == 1


async def test_without_an_origin_nothing_changes(browser: Browser) -> None:
    response = await browser.client.post("/v1/t", content=event(), headers=PLAIN)
    assert response.status_code == 200 and "access-control-allow-origin" not in response.headers
    assert browser.origins.lookups == 0


@pytest.mark.parametrize(
    "content_type",
    ["text/plain", "application/json", "application/json; charset=utf-8", 'TEXT/PLAIN; charset="utf-8"'],
)
async def test_json_bodies_come_as_json_or_plain_text(browser: Browser, content_type: str) -> None:
    response = await browser.client.post("/v1/track", content=event(), headers={"Content-Type": content_type})
    assert response.status_code == 200


@pytest.mark.parametrize(
    ("content_type", "named"),
    [
        ("application/x-www-form-urlencoded", "application/x-www-form-urlencoded"),
        ("multipart/form-data; boundary=x", "multipart/form-data"),
        ("text/plain; charset=iso-8859-1", "iso-8859-1"),
    ],
)
async def test_other_content_types_are_a_415_naming_what_is_accepted(
    browser: Browser, content_type: str, named: str
) -> None:
    response = await browser.client.post("/v1/t", content=event(), headers={"Content-Type": content_type})
    assert (response.status_code, response.json()["code"]) == (415, "unsupported_media_type")
    assert named in response.json()["message"]
    assert browser.publisher.sent == []


async def test_preflight_passes_an_origin_some_workspace_allows(browser: Browser) -> None:
    headers = {"Origin": OTHER_SHOP, "Access-Control-Request-Method": "POST"}
    response = await browser.client.options("/v1/batch", headers=headers)
    assert response.status_code == 204
    assert response.headers["access-control-allow-origin"] == OTHER_SHOP
    assert response.headers["access-control-allow-methods"] == "POST"
    assert "Content-Type" in response.headers["access-control-allow-headers"]
    assert "Authorization" in response.headers["access-control-allow-headers"]
    assert int(response.headers["access-control-max-age"]) > 0
    assert "access-control-allow-credentials" not in response.headers


@pytest.mark.parametrize("origin", ["https://evil.example", "null"])
async def test_preflight_refuses_an_origin_no_workspace_allows(browser: Browser, origin: str) -> None:
    response = await browser.client.options("/v1/t", headers={"Origin": origin})
    assert response.status_code == 403
    assert not any(h.startswith("access-control-") for h in response.headers)


async def test_preflights_share_one_lookup_until_the_ttl(browser: Browser) -> None:
    for origin in (SHOP, "https://made-up-1.example", "https://made-up-2.example", OTHER_SHOP):
        await browser.client.options("/v1/t", headers={"Origin": origin})
    assert browser.origins.lookups == 1


async def test_errors_are_readable_by_an_allowed_page_but_not_by_others(browser: Browser) -> None:
    bad = await browser.client.post("/v1/t", content=b"{oops", headers=PLAIN | {"Origin": SHOP})
    assert bad.status_code == 400 and bad.headers["access-control-allow-origin"] == SHOP
    elsewhere = await browser.client.post(
        "/v1/t", content=b"{oops", headers=PLAIN | {"Origin": "https://evil.example"}
    )
    assert elsewhere.status_code == 400 and "access-control-allow-origin" not in elsewhere.headers


async def test_a_secret_key_in_the_body_is_refused_like_anywhere(browser: Browser) -> None:
    body = event(writeKey="rt_sk_abcdef")
    response = await browser.client.post("/v1/t", content=body, headers=PLAIN | {"Origin": SHOP})
    assert (response.status_code, response.json()["code"]) == (401, "unauthorized")
    assert "secret key" in response.json()["message"]


async def test_postgresql_away_is_a_503_never_an_unchecked_event(browser: Browser) -> None:
    browser.origins.down = True
    response = await browser.client.post("/v1/t", content=event(), headers=PLAIN | {"Origin": SHOP})
    assert response.status_code == 503 and browser.publisher.sent == []


@pytest.mark.parametrize("path", ["/v1/workspaces/ws1/identity", "/v1/privacy/export"])
async def test_secret_key_routes_get_no_cors_even_from_an_allowed_origin(browser: Browser, path: str) -> None:
    preflight = await browser.client.options(
        path, headers={"Origin": SHOP, "Access-Control-Request-Method": "POST"}
    )
    actual = await browser.client.post(path, json={}, headers={"Origin": SHOP})
    for response in (preflight, actual):
        assert not [h for h in response.headers if h.startswith("access-control-")], response.headers


async def test_segment_settings_send_events_here_for_a_write_key(browser: Browser) -> None:
    response = await browser.client.get(f"/v1/projects/{KEY}/settings", headers={"Origin": SHOP})
    assert response.status_code == 200 and response.headers["access-control-allow-origin"] == SHOP
    segment = response.json()["integrations"]["Segment.io"]
    assert (segment["apiKey"], segment["apiHost"], segment["protocol"]) == (KEY, "ingest/v1", "http")
    assert list(response.json()["integrations"]) == ["Segment.io"]
    assert "Origin" in (await browser.client.get(f"/v1/projects/{KEY}/settings")).headers["vary"]


async def test_rudderstack_source_config_by_query_or_basic_auth(browser: Browser) -> None:
    by_query = await browser.client.get("/sourceConfig/", params={"writeKey": KEY})
    by_auth = await browser.client.get("/sourceConfig", auth=(KEY, ""))
    for response in (by_query, by_auth):
        assert response.status_code == 200
        source = response.json()["source"]
        assert (source["writeKey"], source["destinations"], source["config"] is not None) == (KEY, [], True)
        assert "ws1" not in response.text


@pytest.mark.parametrize("key", ["wk_unknown", "rt_sk_secret_key"])
async def test_sdk_settings_are_the_same_404_for_unknown_and_secret_keys(browser: Browser, key: str) -> None:
    segment = await browser.client.get(f"/v1/projects/{key}/settings")
    rudder = await browser.client.get("/sourceConfig", params={"writeKey": key})
    assert (segment.status_code, rudder.status_code) == (404, 404)
    assert segment.content == rudder.content and key not in segment.text


async def test_sdk_settings_refuse_a_page_the_workspace_does_not_allow(browser: Browser) -> None:
    response = await browser.client.get(f"/v1/projects/{KEY}/settings", headers={"Origin": OTHER_SHOP})
    assert response.status_code == 403 and "access-control-allow-origin" not in response.headers


async def test_the_key_s_rate_limit_applies_and_the_page_can_read_the_429(browser: Browser) -> None:
    answers = [
        await browser.client.post("/v1/t", content=event(), headers=PLAIN | {"Origin": SHOP})
        for _ in range(6)
    ]
    assert [a.status_code for a in answers] == [200] * 5 + [429]
    assert answers[-1].headers["access-control-allow-origin"] == SHOP and "retry-after" in answers[-1].headers
    assert answers[-1].headers["access-control-expose-headers"] == "Retry-After"  # the SDK may read when
    assert len(browser.publisher.sent) == 5
