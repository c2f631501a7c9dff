"""Visitors in a real browser: headless Chromium in the demo shop (the real analytics-next or
RudderStack SDK, consent banner and all) on the real stack — ingest, segmenter, composer and
sender as processes, Kafka, PostgreSQL and the SMTP capture. The shop's workspace is opt-in
and allows only the shop's origin. Each journey is a new browser context (fresh cookies and
localStorage) with its own address; the services and the shop are shared by the module.
"""

from __future__ import annotations

import asyncio
import json
import uuid
from email.message import EmailMessage
from pathlib import Path
from typing import Any

import pytest
from playwright.async_api import Browser

from ..conftest import mails_to, wait_for_mail
from .conftest import CART_WAIT_S, Pipeline, Shop
from .observe import events_on_topic, profile_of, profile_once, raw_events, triggers_to
from .shop_pages import (
    Visit,
    accept_consent,
    add_first_product,
    checkout,
    give_email,
    reject_consent,
    visit,
)

pytestmark = pytest.mark.e2e

CART_SUBJECT_END = "you left something in your cart"
THANKS_SUBJECT_START = "Thank you for your order"
OBJECTION_EVENT = "Segment Consent Preference Updated"
MAIL_DEADLINE_S = 120 + CART_WAIT_S  # generous: the machine is shared and loaded


def address(kind: str) -> str:
    return f"{kind}-{uuid.uuid4().hex[:10]}@example.com"


async def mail_for(capture_dir: Path, recipient: str, pipeline: Pipeline) -> EmailMessage:
    """The one email to `recipient`, waited for; fails with the services' logs when none came."""
    found = await asyncio.to_thread(wait_for_mail, capture_dir, recipient, MAIL_DEADLINE_S)
    if not found:
        pytest.fail(f"no email to {recipient} within {MAIL_DEADLINE_S} s\n{pipeline.logs()}")
    assert len(found) == 1, f"{len(found)} emails to {recipient}, one expected"
    return found[0]


async def events_of(stack: dict[str, str], pipeline: Pipeline, anonymous_id: str) -> list[Any]:
    found = await events_on_topic(stack["RETARGET_KAFKA_BOOTSTRAP"], pipeline.prefix)
    return [event for _, event in found if event.anonymous_id == anonymous_id]


async def abandon_a_cart(
    browser: Browser, shop: Shop, pipeline: Pipeline, path: str, recipient: str
) -> Visit:
    """Accept, add the first product, give the address; returns once every call was answered."""
    seen = await visit(browser, shop.url + path, pipeline.ingest.url)
    await accept_consent(seen.page)
    seen.product = await add_first_product(seen.page)
    await give_email(seen.page, recipient)
    await seen.settled()
    statuses = await seen.post_statuses()
    assert statuses and all(status == 200 for _, status in statuses), statuses
    return seen


async def objected(pipeline: Pipeline, shop: Shop, anonymous_id: str) -> dict[str, Any]:
    """The visitor's profile once the segmenter has recorded the objection (consent false)."""
    return await profile_once(
        pipeline.segmenter.url, shop.workspace_id, anonymous_id, lambda p: p.get("consent") is False
    )


@pytest.mark.parametrize(("path", "sdk"), [("/", "segment"), ("/?sdk=rudderstack", "rudderstack")])
async def test_an_abandoned_cart_in_the_browser_becomes_its_reminder_email(
    browser: Browser,
    shop: Shop,
    pipeline: Pipeline,
    stack: dict[str, str],
    capture_dir: Path,
    path: str,
    sdk: str,
) -> None:
    recipient = address(f"cart-{sdk}")
    seen = await abandon_a_cart(browser, shop, pipeline, path, recipient)
    state = await seen.state()
    assert sdk in state["sdk"]
    anonymous_id = await seen.sdk_anonymous_id()
    assert anonymous_id, "the SDK stored no anonymous id in a cookie or localStorage"
    assert anonymous_id == state["anonymousId"]
    await seen.close()  # the visitor leaves

    mail = await mail_for(capture_dir, recipient, pipeline)
    assert str(mail["Subject"]).endswith(CART_SUBJECT_END)
    added = [e for e in await events_of(stack, pipeline, anonymous_id) if e.event == "Product Added"]
    assert len(added) == 1, "the cart add, under the cookie's anonymous id, once"
    product = seen.product[1]
    assert (added[0].properties["product_id"], added[0].properties["name"]) == seen.product
    assert product in mail.get_body(("plain",)).get_content(), "the reminder names the product"
    # the profile the reminder came from is the one built on the cookie's anonymous id
    profile = await profile_of(pipeline.segmenter.url, shop.workspace_id, anonymous_id)
    assert profile is not None and profile["email"] == recipient and profile["consent"] is True


async def test_a_visitor_who_rejects_is_not_tracked_profiled_or_emailed(
    browser: Browser, shop: Shop, pipeline: Pipeline, stack: dict[str, str], capture_dir: Path
) -> None:
    refused, control = address("reject"), address("control")
    seen = await visit(browser, shop.url, pipeline.ingest.url)
    await reject_consent(seen.page)
    await add_first_product(seen.page)
    await give_email(seen.page, refused)
    await seen.settled()
    assert len(seen.event_posts()) == 1, "only the objection call was sent"
    anonymous_id = json.loads(seen.event_posts()[0].post_data or "{}").get("anonymousId")
    assert anonymous_id, "the objection names the visitor's anonymous id"
    await seen.close()

    # a control visitor who accepts, abandoning a cart after the rejecting one: once its reminder
    # is in, a reminder to the rejecting visitor (due earlier) would have been too
    await (await abandon_a_cart(browser, shop, pipeline, "/", control)).close()
    await mail_for(capture_dir, control, pipeline)
    assert await asyncio.to_thread(mails_to, capture_dir, refused) == []

    events = await events_of(stack, pipeline, anonymous_id)
    assert [e.event for e in events] == [OBJECTION_EVENT], "nothing but the objection reached ingest"
    preferences = events[0].context["consent"]["categoryPreferences"]
    assert preferences and not any(preferences.values()), preferences
    published = await raw_events(stack["RETARGET_KAFKA_BOOTSTRAP"], pipeline.prefix)
    assert not [r for r in published if refused.encode() in r], "the address never left the browser"
    profile = await objected(pipeline, shop, anonymous_id)
    assert not profile.get("cart") and not profile.get("viewed") and "email" not in profile


async def test_a_buyer_gets_the_thank_you_and_not_the_cart_reminder(
    browser: Browser, shop: Shop, pipeline: Pipeline, stack: dict[str, str], capture_dir: Path
) -> None:
    recipient = address("buyer")
    seen = await visit(browser, shop.url, pipeline.ingest.url)
    await accept_consent(seen.page)
    await add_first_product(seen.page)
    await give_email(seen.page, recipient)
    await checkout(seen.page)
    await seen.settled()
    await seen.close()

    mail = await mail_for(capture_dir, recipient, pipeline)
    assert str(mail["Subject"]).startswith(THANKS_SUBJECT_START)
    # the thank-you waits longer than the reminder, and one visitor's triggers keep their order:
    # with the thank-you fired, a reminder would be on the triggers topic before it
    fired = await triggers_to(stack["RETARGET_KAFKA_BOOTSTRAP"], pipeline.prefix, recipient)
    assert [t.campaign for t in fired] == ["post_purchase"]


async def test_opt_in_sends_nothing_before_accept_and_withdrawing_stops_tracking(
    browser: Browser, shop: Shop, pipeline: Pipeline, stack: dict[str, str]
) -> None:
    seen = await visit(browser, shop.url, pipeline.ingest.url)
    await seen.page.wait_for_load_state("networkidle")
    assert seen.requests == [], "the opt-in page spoke to ingest before consent"
    assert await seen.sdk_cookies() == [] and await seen.sdk_anonymous_id() is None
    assert (await seen.state())["sent"] == 0

    await accept_consent(seen.page)
    await add_first_product(seen.page)
    await seen.settled()
    anonymous_id = await seen.sdk_anonymous_id()
    assert anonymous_id and seen.event_posts(), "accepting starts tracking"

    await seen.goto(f"{shop.url}/preferences")
    await seen.page.click('[data-testid="consent-withdraw"]')
    await seen.page.wait_for_function("() => window.__retargetShop.consent === 'denied'")
    await seen.settled()
    posts_at_withdrawal = len(seen.event_posts())

    await seen.goto(shop.url)  # the visitor comes back and shops on
    await add_first_product(seen.page)
    state = await seen.state()
    assert (state["consent"], state["sent"]) == ("denied", 0), state
    assert len(seen.event_posts()) == posts_at_withdrawal, "tracked after withdrawing"
    await seen.close()

    names = [e.event for e in await events_of(stack, pipeline, anonymous_id) if e.type == "track"]
    assert names.count("Product Added") == 1 and names[-1] == OBJECTION_EVENT, names
    profile = await objected(pipeline, shop, anonymous_id)
    assert not profile.get("cart") and not profile.get("viewed"), "profiling stopped at the objection"


PROBE = """async ([ingest, writeKey, anonymousId]) => {
  try {
    const answer = await fetch(ingest + '/v1/t', {
      method: 'POST',
      headers: {'Content-Type': 'text/plain'},
      body: JSON.stringify({writeKey, anonymousId, type: 'track', event: 'Probe'}),
    })
    return answer.status
  } catch (error) {
    return String(error)
  }
}"""


async def test_a_page_on_an_origin_the_workspace_does_not_allow_gets_its_events_refused(
    browser: Browser, shop: Shop, pipeline: Pipeline, stack: dict[str, str]
) -> None:
    # the same shop by another name: http://localhost:PORT is not the allowed http://127.0.0.1:PORT
    stranger = shop.url.replace("127.0.0.1", "localhost")
    seen = await visit(browser, stranger, pipeline.ingest.url)
    await accept_consent(seen.page)
    await add_first_product(seen.page)
    refused_probe = await seen.page.evaluate(PROBE, [pipeline.ingest.url, shop.write_key, "probe-stranger"])
    assert refused_probe != 200, "a disallowed origin's event was accepted"
    await seen.quiet()
    sdk_id = (await seen.state())["anonymousId"]
    # the SDK gets no further than the refusal: analytics-next can't even read its settings there
    statuses = await seen.post_statuses()
    assert all(status is None or status >= 400 for _, status in statuses), statuses
    await seen.close()

    # control: the same call from the allowed origin goes through, so the topic shows what arrived
    allowed = await visit(browser, shop.url, pipeline.ingest.url)
    assert await allowed.page.evaluate(PROBE, [pipeline.ingest.url, shop.write_key, "probe-allowed"]) == 200
    await allowed.close()
    found = await events_on_topic(stack["RETARGET_KAFKA_BOOTSTRAP"], pipeline.prefix)
    ids = {event.anonymous_id for _, event in found}
    assert "probe-allowed" in ids
    assert "probe-stranger" not in ids and (sdk_id is None or sdk_id not in ids)
