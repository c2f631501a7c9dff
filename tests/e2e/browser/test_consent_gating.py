"""Consent in the opt-in shop, for both SDKs, against what a visitor does before choosing: the
journeys check the page load alone, but a visitor may shop, sign up and buy before touching
the banner. None of it may reach ingest or leave an SDK id in the browser; a reject then sends
exactly the one objection, still with no SDK cookie."""

from __future__ import annotations

import json

import pytest
from playwright.async_api import Browser

from .conftest import Pipeline, Shop
from .shop_pages import add_first_product, checkout, give_email, reject_consent, visit

pytestmark = pytest.mark.e2e

OBJECTION_EVENT = "Segment Consent Preference Updated"


@pytest.mark.parametrize("path", ["/", "/?sdk=rudderstack"])
async def test_nothing_a_visitor_does_before_choosing_reaches_ingest(
    browser: Browser, shop: Shop, pipeline: Pipeline, path: str
) -> None:
    seen = await visit(browser, shop.url + path, pipeline.ingest.url)
    await seen.page.wait_for_load_state("networkidle")
    await add_first_product(seen.page)
    await give_email(seen.page, "before-choosing@example.com")
    await checkout(seen.page)
    await seen.page.wait_for_load_state("networkidle")
    await seen.page.wait_for_timeout(1500)  # an SDK's flush interval: anything queued would go now
    assert [(r.method, r.url) for r in seen.requests] == [], "ingest heard from a visitor who never chose"
    assert await seen.sdk_cookies() == [] and await seen.sdk_anonymous_id() is None
    state = await seen.state()
    assert (state["consent"], state["sent"]) == ("unknown", 0), state

    await reject_consent(seen.page)
    await seen.settled()
    posts = seen.event_posts()
    assert [json.loads(p.post_data or "{}").get("event") for p in posts] == [OBJECTION_EVENT]
    assert await seen.sdk_cookies() == [], "the objection of a visitor never tracked stored an SDK id"
    await add_first_product(seen.page)
    await seen.page.wait_for_timeout(1500)
    assert len(seen.event_posts()) == 1, "tracked after the reject"
    await seen.close()
