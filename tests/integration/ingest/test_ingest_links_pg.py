"""Tracking links against the real PostgreSQL and Kafka: unsubscribes land in the
suppression list before the answer, clicks and opens land on the events topic."""

from __future__ import annotations

import dataclasses
import secrets
import time
from collections.abc import AsyncIterator
from datetime import timedelta

import asyncpg
import httpx
import pytest
from pydantic import SecretStr

from retarget.common.identity import email_digest
from retarget.common.tokens import LinkClaims, LinkKind, link_url, sign
from retarget.common.workspaces import WorkspaceStore
from retarget.ingest.settings import IngestSettings

from .conftest import EventReader, Tenant, serving, suppression_of

pytestmark = pytest.mark.integration

SECRET = secrets.token_hex(32)  # what RETARGET_LINK_SECRET holds
ADDRESS = " Ann.Example@Example.COM "  # normalised before hashing, as the composer does


@pytest.fixture
async def links_url(ingest_settings: IngestSettings) -> AsyncIterator[str]:
    settings = ingest_settings.model_copy(update={"link_secret": SecretStr(SECRET)})
    async with serving(settings) as url:
        yield url


def token(base: str, tenant: Tenant, kind: LinkKind, **extra: str | int) -> str:
    claims = LinkClaims(
        **{  # type: ignore[arg-type]
            "kind": kind,
            "message_id": f"m-{secrets.token_hex(8)}",
            "workspace_id": tenant.workspace_id,
            "campaign": "abandoned_cart",
            "profile_id": "p-7",
            "expires": int(time.time()) + 3600,
        }
        | extra
    )
    return link_url(base, kind, sign(claims, SECRET.encode()))


async def _suppression(workspace_id: str) -> asyncpg.Record | None:
    return await suppression_of(workspace_id, ADDRESS)


async def test_one_click_unsubscribe_is_in_the_suppression_list_when_answered(links_url, tenant) -> None:
    url = token(links_url, tenant, "unsubscribe", recipient_hash=email_digest(ADDRESS).hex())
    async with httpx.AsyncClient() as client:
        page = await client.get(url)  # what a link scanner does: must change nothing
        assert page.status_code == 200 and "<form" in page.text
        assert await _suppression(tenant.workspace_id) is None

        response = await client.post(url, data={"List-Unsubscribe": "One-Click"})
        assert response.status_code == 200
        row = await _suppression(tenant.workspace_id)
        assert row is not None and (row["reason"], row["source"]) == ("unsubscribed", "link:one-click")

        replay = await client.post(url, data={"List-Unsubscribe": "One-Click"})
        assert replay.status_code == 200 and "already" in replay.text


async def test_an_unsubscribe_link_from_an_email_200_days_old_still_works(
    links_url, tenant, read_events: EventReader
) -> None:
    day, sent = 86400, int(time.time()) - 200 * 86400
    recipient = email_digest(ADDRESS).hex()
    current = token(  # as the composer signs it now: issued 200 days ago, 400 days to live
        links_url, tenant, "unsubscribe", recipient_hash=recipient, issued=sent, expires=sent + 400 * day
    )
    legacy = token(  # signed before unsubscribe links had their own TTL: 60 days, no issue time
        links_url, tenant, "unsubscribe", recipient_hash=recipient, expires=sent + 60 * day
    )
    async with httpx.AsyncClient() as client:
        for url in (current, legacy):
            response = await client.post(url, data={"List-Unsubscribe": "One-Click"})
            assert response.status_code == 200, response.text
        old_click = token(links_url, tenant, "click", url="https://www.example.com/", expires=sent + 60 * day)
        assert (await client.get(old_click)).status_code == 404  # clicks keep their 60 days
    events = await read_events(2)
    assert [event.event for _, event in events] == ["Unsubscribed", "Unsubscribed"]
    assert {event.properties["source"] for _, event in events} == {"link:one-click"}
    row = await _suppression(tenant.workspace_id)
    assert row is not None and row["reason"] == "unsubscribed"


async def test_campaign_only_unsubscribe_and_forged_links(links_url, tenant) -> None:
    url = token(links_url, tenant, "unsubscribe", recipient_hash=email_digest(ADDRESS).hex())
    async with httpx.AsyncClient() as client:
        assert (await client.post(url, data={"scope": "campaign"})).status_code == 200
        forged = url[:-6] + ("AAAAAA" if not url.endswith("AAAAAA") else "BBBBBB")
        assert (await client.post(forged, data={"List-Unsubscribe": "One-Click"})).status_code == 404
        assert (await client.get(forged.replace("/t/u/", "/t/c/"))).status_code == 404
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        campaigns = await conn.fetch(
            "SELECT campaign FROM campaign_unsubscribes WHERE workspace_id = $1", tenant.workspace_id
        )
    finally:
        await conn.close()
    assert [r["campaign"] for r in campaigns] == ["abandoned_cart"]
    assert await _suppression(tenant.workspace_id) is None  # not from everything


async def test_opens_and_clicks_are_events_keyed_by_profile(
    links_url, tenant, read_events: EventReader
) -> None:
    click = token(links_url, tenant, "click", url="https://www.example.com/p/1")  # the from domain's
    pixel = token(links_url, tenant, "open")
    async with httpx.AsyncClient() as client:
        redirect = await client.get(click)
        assert (redirect.status_code, redirect.headers["location"]) == (302, "https://www.example.com/p/1")
        gif = await client.get(pixel, headers={"User-Agent": "Mozilla/5.0"})  # Apple MPP's prefetch
        assert gif.status_code == 200 and gif.content.startswith(b"GIF89a")
    events = {event.event: (key, event) for key, event in await read_events(2)}
    key, clicked = events["Email Link Clicked"]
    assert (
        key == f"{tenant.workspace_id}:p-7".encode()
        and clicked.properties["url"] == "https://www.example.com/p/1"
    )
    assert events["Email Opened"][1].properties["machine_open"] is True


async def _set_link_domains(workspace_id: str, domains: tuple[str, ...]) -> None:
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        store = WorkspaceStore(conn)
        workspace = await store.get(workspace_id)
        assert workspace is not None
        await store.upsert(dataclasses.replace(workspace, link_domains=domains))
    finally:
        await conn.close()


async def test_a_signed_click_to_a_site_outside_the_workspace_domains_is_refused(
    ingest_settings: IngestSettings, serve, tenant, read_events: EventReader
) -> None:
    await _set_link_domains(tenant.workspace_id, ("boots.example",))
    settings = ingest_settings.model_copy(
        update={"link_secret": SecretStr(SECRET), "link_domains_cache_s": 0.0}  # see each change
    )
    phishing = "https://evil.example/login"
    async with serve(settings) as url, httpx.AsyncClient() as client:
        for refused in (phishing, "https://boots.example@evil.example/", "https://shop@example.com/"):
            response = await client.get(token(url, tenant, "click", url=refused))
            assert response.status_code == 403 and "location" not in response.headers
        allowed = await client.get(token(url, tenant, "click", url="https://www.boots.example/p/1"))
        assert (allowed.status_code, allowed.headers["location"]) == (302, "https://www.boots.example/p/1")

        await _set_link_domains(tenant.workspace_id, ("boots.example", "evil.example"))
        now_allowed = await client.get(token(url, tenant, "click", url=phishing))
        assert (now_allowed.status_code, now_allowed.headers["location"]) == (302, phishing)
    # the refused clicks were not recorded: the first events are the two redirects
    urls = [event.properties["url"] for _, event in await read_events(2)]
    assert urls == ["https://www.boots.example/p/1", phishing]


async def test_unique_opens_and_clicks_are_counted_once_per_email_across_repeats(links_url, tenant) -> None:
    from prometheus_client import REGISTRY

    def unique(action: str) -> float:
        labels = {"workspace": tenant.workspace_id, "campaign": "abandoned_cart", "action": action}
        return REGISTRY.get_sample_value("retarget_ingest_engagement_unique_total", labels) or 0.0

    message_id = f"m-{secrets.token_hex(8)}"
    pixel = token(links_url, tenant, "open", message_id=message_id)
    click = token(links_url, tenant, "click", message_id=message_id, url="https://www.example.com/p/1")
    browser = {"User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Thunderbird/115.5.0"}
    async with httpx.AsyncClient() as client:
        await client.get(pixel, headers={"User-Agent": "Mozilla/5.0"})  # Apple MPP: not a person
        assert unique("opened") == 0
        for _ in range(3):
            assert (await client.get(pixel, headers=browser)).status_code == 200
        for _ in range(2):
            assert (await client.get(click, headers=browser)).status_code == 302
    assert (unique("opened"), unique("clicked")) == (1, 1)
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        kinds = await conn.fetch("SELECT kind FROM engagement_firsts WHERE message_id = $1", message_id)
    finally:
        await conn.close()
    assert sorted(r["kind"] for r in kinds) == ["clicked", "opened"]


async def test_first_engagements_older_than_the_links_lifetime_are_deleted_as_new_ones_come(
    links_url, tenant
) -> None:
    old = [f"m-old-{secrets.token_hex(8)}" for _ in range(2)]
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        await conn.executemany(
            "INSERT INTO engagement_firsts (message_id, kind, first_at) VALUES ($1, 'opened', now() - $2::interval)",
            [(message_id, timedelta(days=61)) for message_id in old],
        )
        browser = {
            "User-Agent": "Mozilla/5.0 (X11; Linux x86_64; rv:109.0) Gecko/20100101 Thunderbird/115.5.0"
        }
        async with httpx.AsyncClient() as client:
            assert (await client.get(token(links_url, tenant, "open"), headers=browser)).status_code == 200
        left = await conn.fetchval("SELECT count(*) FROM engagement_firsts WHERE message_id = ANY($1)", old)
    finally:
        await conn.close()
    assert left == 0
