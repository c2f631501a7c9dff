"""A withdrawal on /preferences must leave the browser without the ids the visitor was tracked
under (docs/tracking.md: "the objection, then the SDK forgets the visitor's ids"): the journeys
check that nothing is sent afterwards, not that the ids are gone."""

from __future__ import annotations

import pytest
from playwright.async_api import Browser

from .conftest import Pipeline, Shop
from .shop_pages import accept_consent, add_first_product, visit

pytestmark = pytest.mark.e2e


@pytest.mark.parametrize("sdk", ["segment", "rudderstack"])
async def test_a_withdrawal_forgets_the_ids_the_visitor_was_tracked_under(
    browser: Browser, shop: Shop, pipeline: Pipeline, sdk: str
) -> None:
    query = "?sdk=rudderstack" if sdk == "rudderstack" else ""
    seen = await visit(browser, f"{shop.url}/{query}", pipeline.ingest.url)
    await accept_consent(seen.page)
    await add_first_product(seen.page)
    await seen.settled()
    tracked_as = await seen.sdk_anonymous_id()
    assert tracked_as

    await seen.goto(f"{shop.url}/preferences{query}")
    await seen.page.click('[data-testid="consent-withdraw"]')
    await seen.page.wait_for_function("() => window.__retargetShop.consent === 'denied'")
    await seen.settled()
    await seen.page.wait_for_timeout(500)  # reset() runs once the objection is handed over
    left = await seen.sdk_anonymous_id()
    if sdk == "segment":
        assert left is None and await seen.sdk_cookies() == [], "analytics-next kept the visitor's ids"
    else:  # RudderStack's reset(true) stores a fresh id that is never sent (docs/tracking.md)
        assert left != tracked_as, "RudderStack kept the id the visitor was tracked under"
    await seen.close()


async def test_a_visitor_who_chose_is_not_asked_again(
    browser: Browser, shop: Shop, pipeline: Pipeline
) -> None:
    seen = await visit(browser, shop.url, pipeline.ingest.url)
    await seen.page.click('[data-testid="consent-reject"]')
    await seen.page.wait_for_function("() => window.__retargetShop.consent === 'denied'")
    await seen.settled()
    await seen.goto(shop.url)  # the next page, the same visitor
    assert await seen.page.locator('[data-testid="consent-banner"]').is_hidden(), "asked again"
    await seen.close()
