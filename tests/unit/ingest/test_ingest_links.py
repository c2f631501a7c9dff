"""Tracking links (/t/*) through the ASGI app, with fakes for Kafka and PostgreSQL."""

from __future__ import annotations

import hashlib
from collections.abc import AsyncIterator
from dataclasses import dataclass

import httpx
import msgspec
import pytest

from retarget.common.schemas import TrackedEvent
from retarget.common.testing import FakeClock
from retarget.common.tokens import LinkClaims, LinkKind, sign
from retarget.ingest.bootstrap import bootstrap
from retarget.ingest.forms import form_fields, is_one_click
from retarget.ingest.links import PIXEL_GIF
from retarget.ingest.main import create_app
from retarget.ingest.settings import IngestSettings
from retarget.ingest.testing import (
    FakeEngagementFirsts,
    FakeKeys,
    FakeLinkDomains,
    FakePublisher,
    FakeUnsubscribes,
)

SECRET = b"unit-test-link-secret"
RECIPIENT = hashlib.sha256(b"ann@example.com").hexdigest()
BROWSER = "Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 Chrome/126.0 Safari/537.36"


@dataclass
class Links:
    client: httpx.AsyncClient
    publisher: FakePublisher
    unsubscribes: FakeUnsubscribes
    clock: FakeClock
    firsts: FakeEngagementFirsts

    def token(self, kind: LinkKind, *, secret: bytes = SECRET, ttl_s: int = 3600, **fields: str) -> str:
        claims = {
            "kind": kind,
            "message_id": "m-abc",
            "workspace_id": "ws1",
            "campaign": "abandoned_cart",
            "profile_id": "p-42",
            "expires": int(self.clock.timestamp()) + ttl_s,
        } | fields
        if kind == "click":
            claims.setdefault("url", "https://shop.example/cart?utm=1")
        if kind == "unsubscribe":
            claims.setdefault("recipient_hash", RECIPIENT)
        return sign(LinkClaims(**claims), secret)  # type: ignore[arg-type]

    def events(self) -> list[tuple[bytes, TrackedEvent]]:
        return [(key, msgspec.json.decode(value, type=TrackedEvent)) for _, key, value in self.publisher.sent]


@pytest.fixture
async def links() -> AsyncIterator[Links]:
    settings = IngestSettings(topic_prefix="unit", link_secret=SECRET.decode())
    publisher, unsubscribes, clock = FakePublisher(), FakeUnsubscribes({"ws1"}), FakeClock()
    firsts = FakeEngagementFirsts()
    services = bootstrap(
        settings,
        publisher=publisher,
        key_lookup=FakeKeys(),
        unsubscribes=unsubscribes,
        link_domains=FakeLinkDomains({"ws1": ("shop.example",)}),
        engagement_firsts=firsts,
        clock=clock,
    )
    transport = httpx.ASGITransport(app=create_app(settings, services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        yield Links(client, publisher, unsubscribes, clock, firsts)


async def test_open_pixel_is_an_uncached_gif_and_an_email_opened_event(links: Links) -> None:
    response = await links.client.get(f"/t/o/{links.token('open')}.gif", headers={"User-Agent": BROWSER})
    assert (response.status_code, response.content, response.headers["content-type"]) == (
        200,
        PIXEL_GIF,
        "image/gif",
    )
    assert len(response.content) == 43 and "no-store" in response.headers["cache-control"]
    [(key, event)] = links.events()
    assert key == b"ws1:p-42" and links.publisher.sent[0][0] == "unit.events.v1"
    assert (event.type, event.event, event.anonymous_id, event.workspace_id) == (
        "track",
        "Email Opened",
        "p-42",
        "ws1",
    )
    assert event.properties == {
        "message_id": "m-abc",
        "campaign": "abandoned_cart",
        "machine_open": False,
        "open_source": "client",
    }
    assert event.origin == "link"  # what makes it a touch in the segmenter (a client can't set it)


@pytest.mark.parametrize(
    ("agent", "source"), [("Mozilla/5.0", "apple_mpp"), ("Barracuda Sentinel", "scanner"), ("", "scanner")]
)
async def test_machine_fetches_are_flagged_not_counted_as_human(
    links: Links, agent: str, source: str
) -> None:
    await links.client.get(f"/t/o/{links.token('open')}.gif", headers={"User-Agent": agent})
    properties = links.events()[0][1].properties
    assert (properties["machine_open"], properties["open_source"]) == (True, source)


async def test_a_gmail_proxy_fetch_is_a_human_open_named_after_the_proxy(links: Links) -> None:
    agent = "Mozilla/5.0 (Windows NT 5.1; rv:11.0) Gecko Firefox/11.0 (via ggpht.com GoogleImageProxy)"
    await links.client.get(f"/t/o/{links.token('open')}.gif", headers={"User-Agent": agent})
    properties = links.events()[0][1].properties
    assert (properties["machine_open"], properties["open_source"]) == (False, "gmail_proxy")


async def test_a_click_within_seconds_of_the_email_is_a_scanner_prefetch(links: Links) -> None:
    issued = int(links.clock.timestamp())
    token = links.token("click", issued=issued)  # type: ignore[arg-type]
    links.clock.advance(seconds=3)
    await links.client.get(f"/t/c/{token}", headers={"User-Agent": BROWSER})
    links.clock.advance(seconds=60)
    await links.client.get(f"/t/c/{token}", headers={"User-Agent": BROWSER})  # a person, later
    first, later = (event.properties for _, event in links.events())
    assert (first.get("machine_click"), first.get("click_source")) == (True, "prefetch")
    assert "machine_click" not in later


async def test_an_unsubscribe_link_200_days_old_still_unsubscribes(links: Links) -> None:
    issued = int(links.clock.timestamp())
    new = links.token("unsubscribe", ttl_s=400 * 86400, issued=issued)  # type: ignore[arg-type]
    legacy = links.token("unsubscribe", ttl_s=60 * 86400, message_id="m-old")  # no issue time, 60 days
    click = links.token("click", ttl_s=60 * 86400)
    links.clock.advance(days=200)
    for token in (new, legacy):
        response = await links.client.post(f"/t/u/{token}", data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200
    assert (await links.client.get(f"/t/c/{click}")).status_code == 404  # clicks keep their TTL
    assert [event.event for _, event in links.events()] == ["Unsubscribed", "Unsubscribed"]
    links.clock.advance(days=201)  # 401 days: past the 400-day unsubscribe TTL
    assert (
        await links.client.post(f"/t/u/{legacy}", data={"List-Unsubscribe": "One-Click"})
    ).status_code == 404


async def test_a_bad_open_token_still_gets_the_gif_but_no_event(links: Links) -> None:
    for token in ("garbage", links.token("open", secret=b"other"), links.token("click")):
        response = await links.client.get(f"/t/o/{token}.gif")
        assert (response.status_code, response.content) == (200, PIXEL_GIF)
    assert links.publisher.sent == []


async def test_click_redirects_to_the_signed_destination_and_publishes(links: Links) -> None:
    response = await links.client.get(f"/t/c/{links.token('click')}", headers={"User-Agent": BROWSER})
    assert (response.status_code, response.headers["location"]) == (302, "https://shop.example/cart?utm=1")
    [(key, event)] = links.events()
    assert (key, event.event) == (b"ws1:p-42", "Email Link Clicked")
    assert event.properties["url"] == "https://shop.example/cart?utm=1"


async def test_forged_altered_expired_or_wrong_kind_click_tokens_get_the_same_404(links: Links) -> None:
    good = links.token("click")
    payload, mac = good.split(".")
    altered = sign(LinkClaims("click", "m", "ws1", "c", "p", 2**40, url="https://evil.example"), b"x")
    bad_tokens = [
        links.token("click", secret=b"forged"),
        f"{payload[:-2]}AA.{mac}",  # payload changed, signature kept
        altered.split(".")[0] + "." + mac,  # someone else's destination with our signature
        links.token("click", ttl_s=-10),  # expired
        links.token("open"),  # right signature, wrong route
        "not-a-token",
        "x" * 5000,
    ]
    bodies = set()
    for token in bad_tokens:
        response = await links.client.get(f"/t/c/{token}")
        assert response.status_code == 404 and "location" not in response.headers
        bodies.add(response.text)
    assert len(bodies) == 1 and "expired" in bodies.pop()  # one page for every reason
    assert links.publisher.sent == []


async def test_kafka_down_does_not_stop_a_click_or_a_pixel(links: Links) -> None:
    links.publisher.down = True
    assert (await links.client.get(f"/t/c/{links.token('click')}")).status_code == 302
    assert (await links.client.get(f"/t/o/{links.token('open')}.gif")).status_code == 200


async def test_get_on_the_unsubscribe_link_only_shows_the_page(links: Links) -> None:
    response = await links.client.get(f"/t/u/{links.token('unsubscribe')}")
    assert response.status_code == 200 and '<form method="post">' in response.text
    assert 'value="all"' in response.text and "abandoned_cart" in response.text
    assert links.unsubscribes.recorded == set() and links.publisher.sent == []


@pytest.mark.parametrize(
    ("content_type", "body"),
    [
        ("application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click"),
        (
            "multipart/form-data, boundary=-=-=-=-=",  # the example of RFC 8058, section 8.1
            b'---=-=-=-=\r\nContent-Disposition: form-data; name="List-Unsubscribe"\r\n\r\n'
            b"One-Click\r\n---=-=-=-=--\r\n",
        ),
    ],
)
async def test_one_click_post_unsubscribes_at_once_and_a_replay_is_harmless(
    links: Links, content_type: str, body: bytes
) -> None:
    url = f"/t/u/{links.token('unsubscribe')}"
    first = await links.client.post(url, content=body, headers={"Content-Type": content_type})
    assert first.status_code == 200 and "unsubscribed" in first.text
    assert links.unsubscribes.recorded == {("ws1", bytes.fromhex(RECIPIENT), "*")}
    assert links.unsubscribes.sources == ["link:one-click"]
    again = await links.client.post(url, content=body, headers={"Content-Type": content_type})
    assert again.status_code == 200 and "already" in again.text
    events = [event for _, event in links.events()]
    assert [e.event for e in events] == ["Unsubscribed", "Unsubscribed"]
    assert events[0].message_id == events[1].message_id  # the segmenter keeps one
    assert events[0].properties["scope"] == "all"


async def test_the_preference_page_can_stop_only_this_campaign(links: Links) -> None:
    response = await links.client.post(f"/t/u/{links.token('unsubscribe')}", data={"scope": "campaign"})
    assert response.status_code == 200 and "abandoned_cart" in response.text
    assert links.unsubscribes.recorded == {("ws1", bytes.fromhex(RECIPIENT), "abandoned_cart")}


async def test_bad_unsubscribe_requests_get_plain_answers_never_a_5xx(links: Links) -> None:
    token = links.token("unsubscribe")
    form = {"List-Unsubscribe": "One-Click"}
    assert (await links.client.post(f"/t/u/{token}", data={"scope": "everything"})).status_code == 400
    assert (await links.client.post(f"/t/u/{token}", content=b"x" * 5000)).status_code == 400
    assert (await links.client.post(f"/t/u/{token}?q={'x' * 3000}", data=form)).status_code == 414
    assert (await links.client.get(f"/t/c/{links.token('click')}?{'a' * 3000}")).status_code == 414
    unknown = links.token("unsubscribe", workspace_id="ws-gone")
    assert (await links.client.post(f"/t/u/{unknown}", data=form)).status_code == 404
    no_recipient = links.token("unsubscribe", recipient_hash="not-a-hash")
    assert (await links.client.post(f"/t/u/{no_recipient}", data=form)).status_code == 404
    assert links.unsubscribes.recorded == set()


async def test_an_unsubscribe_the_database_cannot_take_is_a_503_to_retry(links: Links) -> None:
    links.unsubscribes.down = True
    form = {"List-Unsubscribe": "One-Click"}
    response = await links.client.post(f"/t/u/{links.token('unsubscribe')}", data=form)
    assert response.status_code == 503 and response.headers["retry-after"] == "2"
    assert links.publisher.sent == []  # never published what was not recorded


async def test_without_a_link_secret_every_link_is_not_found() -> None:
    settings = IngestSettings(topic_prefix="unit")
    services = bootstrap(settings, publisher=FakePublisher(), key_lookup=FakeKeys(), clock=FakeClock())
    transport = httpx.ASGITransport(app=create_app(settings, services=services))
    async with httpx.AsyncClient(transport=transport, base_url="http://ingest") as client:
        claims = LinkClaims("click", "m", "ws1", "c", "p", 2**40, url="https://shop.example/")
        assert (await client.get(f"/t/c/{sign(claims, SECRET)}")).status_code == 404


def test_form_fields_understand_urlencoded_and_multipart() -> None:
    assert is_one_click(form_fields("application/x-www-form-urlencoded", b"List-Unsubscribe=One-Click"))
    multipart = b'--b\r\nContent-Disposition: form-data; name="scope"\r\n\r\ncampaign\r\n--b--'
    assert form_fields('multipart/form-data; boundary="b"', multipart) == {"scope": "campaign"}
    assert form_fields("multipart/form-data", b"no boundary") == {}
    assert not is_one_click(form_fields(None, b"List-Unsubscribe=Two-Clicks"))


async def test_engagement_is_counted_per_workspace_and_campaign_for_the_funnel(links: Links) -> None:
    from prometheus_client import REGISTRY

    def count(action: str) -> float:
        labels = {"workspace": "ws1", "campaign": "abandoned_cart", "action": action}
        return REGISTRY.get_sample_value("retarget_ingest_engagement_total", labels) or 0.0

    before = {a: count(a) for a in ("opened", "opened_machine", "clicked", "unsubscribed")}
    await links.client.get(f"/t/o/{links.token('open')}.gif", headers={"User-Agent": BROWSER})
    await links.client.get(f"/t/o/{links.token('open')}.gif", headers={"User-Agent": "Mozilla/5.0"})
    await links.client.get(f"/t/c/{links.token('click')}", headers={"User-Agent": BROWSER})
    unsubscribe = links.token("unsubscribe")
    for _ in range(2):  # a replayed unsubscribe is not a second person leaving
        await links.client.post(f"/t/u/{unsubscribe}", data={"List-Unsubscribe": "One-Click"})
    after = {a: count(a) - before[a] for a in before}
    assert after == {"opened": 1, "opened_machine": 1, "clicked": 1, "unsubscribed": 1}


async def test_unique_opens_and_clicks_count_each_email_once_and_leave_machines_out(links: Links) -> None:
    from prometheus_client import REGISTRY

    def unique(action: str, campaign: str) -> float:
        labels = {"workspace": "ws1", "campaign": campaign, "action": action}
        return REGISTRY.get_sample_value("retarget_ingest_engagement_unique_total", labels) or 0.0

    campaign = "unique_counting"
    first, second = (links.token("open", message_id=m, campaign=campaign) for m in ("m-1", "m-2"))
    await links.client.get(f"/t/o/{first}.gif", headers={"User-Agent": "Mozilla/5.0"})  # Apple MPP
    assert unique("opened", campaign) == 0
    for _ in range(3):  # the same person opening the same email again and again
        await links.client.get(f"/t/o/{first}.gif", headers={"User-Agent": BROWSER})
    await links.client.get(f"/t/o/{second}.gif", headers={"User-Agent": BROWSER})
    click = links.token("click", message_id="m-1", campaign=campaign)
    for _ in range(2):
        await links.client.get(f"/t/c/{click}", headers={"User-Agent": BROWSER})
    assert (unique("opened", campaign), unique("clicked", campaign)) == (2, 1)


async def test_postgresql_away_leaves_the_unique_count_out_not_the_gif_or_the_redirect(links: Links) -> None:
    links.firsts.down = True
    pixel = await links.client.get(f"/t/o/{links.token('open')}.gif", headers={"User-Agent": BROWSER})
    click = await links.client.get(f"/t/c/{links.token('click')}", headers={"User-Agent": BROWSER})
    assert (pixel.status_code, click.status_code) == (200, 302)
    assert [event.event for _, event in links.events()] == ["Email Opened", "Email Link Clicked"]
