"""A visitor in the demo shop, driven by Playwright: what they click (by the shop's test ids)
and what the browser sent to ingest (every request seen by the context's listeners)."""

from __future__ import annotations

import asyncio
import base64
import json
import time
from dataclasses import dataclass, field
from typing import Any
from urllib.parse import unquote

from playwright.async_api import Browser, BrowserContext, Page, Request

# the SDKs' anonymous-id cookies (and localStorage keys): analytics-next's and RudderStack v3's
ANONYMOUS_ID_KEYS = ("ajs_anonymous_id", "rl_anonymous_id")
SDK_COOKIE_PREFIXES = ("ajs_", "rl_")
_RUDDER_ENCODED = "RS_ENC_v3_"  # RudderStack v3's storage format: the JSON value in base64


@dataclass
class Visit:
    """One visitor: a fresh browser context (no cookies, empty localStorage) on the shop."""

    context: BrowserContext
    page: Page
    ingest_url: str
    requests: list[Request] = field(default_factory=list)  # every request to ingest, in order
    unfinished: set[Request] = field(default_factory=set)
    product: tuple[str, str] = ("", "")  # (id, name) of what the visitor put in the cart
    posts_before_page: int = 0  # POSTs made before the page now shown (its `sent` counts from 0)

    def to_ingest(self, request: Request) -> bool:
        return request.url.startswith(self.ingest_url)

    def event_posts(self) -> list[Request]:
        """What the SDK sent: every POST to ingest (settings fetches are GETs)."""
        return [r for r in self.requests if r.method == "POST"]

    async def post_statuses(self) -> list[tuple[str, int | None]]:
        """(url, HTTP status) of each POST; None where the browser got no answer it could read."""
        answers = [await r.response() for r in self.event_posts()]
        return [(r.url, a.status if a else None) for r, a in zip(self.event_posts(), answers, strict=True)]

    async def goto(self, url: str) -> None:
        """Loads `url` in this visitor's tab (same cookies) and waits for the shop's script."""
        self.posts_before_page = len(self.event_posts())
        await self.page.goto(url)
        await self.page.wait_for_function("() => window.__retargetShop !== undefined")

    async def state(self) -> dict[str, Any]:
        """The shop's window.__retargetShop: {sdk, consent, sent, anonymousId}."""
        found: dict[str, Any] = await self.page.evaluate("() => window.__retargetShop")
        return found

    async def settled(self, timeout_s: float = 60) -> dict[str, Any]:
        """Waits until every SDK call the page made has been POSTed and the POST finished
        (answered or refused); returns the page's state then."""
        deadline = time.monotonic() + timeout_s
        while True:
            state = await self.state()
            posted = len(self.event_posts()) - self.posts_before_page
            if not self.unfinished and posted >= state["sent"]:
                return state
            if time.monotonic() > deadline:
                raise AssertionError(
                    f"the SDK made {state['sent']} calls, {posted} POSTs reached "
                    f"ingest, {len(self.unfinished)} unfinished after {timeout_s} s"
                )
            await asyncio.sleep(0.2)

    async def quiet(self, timeout_s: float = 60) -> None:
        """Waits until no request to ingest is in flight."""
        deadline = time.monotonic() + timeout_s
        while self.unfinished:
            assert time.monotonic() < deadline, (
                f"{len(self.unfinished)} requests unfinished after {timeout_s} s"
            )
            await asyncio.sleep(0.2)

    async def sdk_anonymous_id(self) -> str | None:
        """The anonymous id as the SDK stored it: its first-party cookie, else localStorage."""
        for cookie in await self.context.cookies():
            if cookie["name"] in ANONYMOUS_ID_KEYS:
                return stored_value(cookie["value"])
        for key in ANONYMOUS_ID_KEYS:
            raw = await self.page.evaluate("(key) => window.localStorage.getItem(key)", key)
            if raw:
                return stored_value(raw)
        return None

    async def sdk_cookies(self) -> list[str]:
        return [c["name"] for c in await self.context.cookies() if c["name"].startswith(SDK_COOKIE_PREFIXES)]

    async def close(self) -> None:
        await self.context.close()


def stored_value(raw: str) -> str:
    """An SDK's stored id: URL-encoded, maybe RudderStack-encoded, maybe a JSON string."""
    value = unquote(raw)
    if value.startswith(_RUDDER_ENCODED):
        value = base64.b64decode(value[len(_RUDDER_ENCODED) :]).decode()
    if value.startswith('"'):
        value = json.loads(value)
    return value


async def visit(browser: Browser, url: str, ingest_url: str) -> Visit:
    """Opens `url` in a new context that records every request to ingest from the first one."""
    context = await browser.new_context()
    page = await context.new_page()
    seen = Visit(context, page, ingest_url)

    def started(request: Request) -> None:
        if seen.to_ingest(request):
            seen.requests.append(request)
            seen.unfinished.add(request)

    def finished(request: Request) -> None:
        seen.unfinished.discard(request)

    context.on("request", started)
    context.on("requestfinished", finished)
    context.on("requestfailed", finished)
    await seen.goto(url)
    return seen


async def accept_consent(page: Page) -> None:
    await page.click('[data-testid="consent-accept"]')
    await page.wait_for_function("() => window.__retargetShop.consent === 'granted'")


async def reject_consent(page: Page) -> None:
    await page.click('[data-testid="consent-reject"]')
    await page.wait_for_function("() => window.__retargetShop.consent === 'denied'")


async def add_first_product(page: Page) -> tuple[str, str]:
    """Adds the first listed product to the cart; its (product id, name as the page shows it)."""
    button = page.locator('[data-testid="add-to-cart"]').first
    product_id = await button.get_attribute("data-product-id")
    assert product_id, "an add-to-cart button without data-product-id"
    name = await button.locator("xpath=ancestor::*[@data-name][1]").get_attribute("data-name")
    assert name, "a product without data-name"
    await button.click()
    return product_id, name


async def give_email(page: Page, address: str) -> None:
    form = page.locator('[data-testid="email-form"]')
    await form.locator("input[type=email]").fill(address)
    await form.locator("button[type=submit], input[type=submit]").first.click()


async def checkout(page: Page) -> None:
    await page.click('[data-testid="checkout"]')
