"""The click redirect goes only to the workspace's own link domains, even for a genuine
token; the domains are cached per workspace (TTL, bounded)."""

from __future__ import annotations

from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import pytest
from prometheus_client import REGISTRY

from retarget.common.testing import FakeClock
from retarget.common.tokens import LinkClaims, sign
from retarget.ingest.bootstrap import bootstrap
from retarget.ingest.link_domains import CachedLinkDomains
from retarget.ingest.main import create_app
from retarget.ingest.settings import IngestSettings
from retarget.ingest.testing import FakeKeys, FakeLinkDomains, FakePublisher, FakeUnsubscribes

SECRET = b"unit-test-link-secret"


@dataclass
class Clicks:
    client: httpx.AsyncClient
    publisher: FakePublisher
    domains: FakeLinkDomains

    async def click(self, url: str, workspace: str = "ws1") -> httpx.Response:
        token = sign(LinkClaims("click", "m-1", workspace, "abandoned_cart", "p-1", 2**40, url=url), SECRET)
        return await self.client.get(f"/t/c/{token}")


@pytest.fixture
async def clicks() -> AsyncIterator[Clicks]:
    settings = IngestSettings(topic_prefix="unit", link_secret=SECRET.decode())
    publisher, domains = FakePublisher(), FakeLinkDomains({"ws1": ("shop.example",)})
    services = bootstrap(
        settings,
        publisher=publisher,
        key_lookup=FakeKeys(),
        unsubscribes=FakeUnsubscribes({"ws1"}),
        link_domains=domains,
        clock=FakeClock(),
    )
    transport = httpx.ASGITransport(app=create_app(settings, services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        yield Clicks(client, publisher, domains)


def refused(reason: str) -> float:
    labels = {"kind": "click", "outcome": f"refused_{reason}"}
    return REGISTRY.get_sample_value("retarget_ingest_tracking_total", labels) or 0.0


@pytest.mark.parametrize(
    ("url", "reason"),
    [
        ("https://evil.example/login", "off_domain"),
        ("https://shop.example@evil.example/", "userinfo"),
        ("http://shop.example/p/1", "scheme"),
        ("https://shop.example:8443/", "port"),
    ],
)
async def test_a_genuine_token_to_another_site_is_refused_and_counted(
    clicks: Clicks, url: str, reason: str
) -> None:
    before = refused(reason)
    response = await clicks.click(url)
    assert response.status_code == 403 and "location" not in response.headers
    assert "outside the sender" in response.text
    assert refused(reason) - before == 1
    assert clicks.publisher.sent == []  # a refused click is not recorded as a click


async def test_the_workspace_domains_and_subdomains_redirect(clicks: Clicks) -> None:
    for url in ("https://shop.example/p/1", "https://www.shop.example/p/2"):
        response = await clicks.click(url)
        assert (response.status_code, response.headers["location"]) == (302, url)
    assert clicks.domains.lookups == 1  # cached: one lookup for both clicks


async def test_an_unknown_workspace_is_not_found(clicks: Clicks) -> None:
    response = await clicks.click("https://shop.example/p/1", workspace="gone")
    assert response.status_code == 404 and "location" not in response.headers


async def test_without_the_database_a_click_is_a_503_to_retry_not_a_redirect(clicks: Clicks) -> None:
    clicks.domains.down = True
    response = await clicks.click("https://shop.example/p/1")
    assert response.status_code == 503 and "location" not in response.headers
    assert response.headers["retry-after"] == "2" and "try again" in response.text  # a page for a person


async def test_the_cache_expires_and_is_bounded() -> None:
    now = [0.0]
    lookup = FakeLinkDomains({"a": ("a.example",), "b": ("b.example",), "c": ("c.example",)})
    cache = CachedLinkDomains(lookup, ttl_s=10, max_entries=2, monotonic=lambda: now[0])
    assert await cache.of("a") == ("a.example",)
    assert await cache.of("a") == ("a.example",) and lookup.lookups == 1
    now[0] = 10.5  # past the TTL: a changed setting shows
    lookup.domains["a"] = ("new.example",)
    assert await cache.of("a") == ("new.example",) and lookup.lookups == 2
    await cache.of("b")
    await cache.of("c")  # a third workspace evicts the least recently refreshed ("a")
    await cache.of("a")
    assert lookup.lookups == 5
    lookup.down = True  # an outage is not cached as "no domains"
    with pytest.raises(Exception, match="link domains"):
        await cache.of("gone")
    lookup.down = False
    assert await cache.of("gone") is None
