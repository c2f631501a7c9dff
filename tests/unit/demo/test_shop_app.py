"""The demo shop's app: its pages, the configuration it injects (escaped), the CSP on every
answer, the SDK switch and its settings' checks. The pages' behaviour in a browser is
tests/e2e/browser/'s job."""

from __future__ import annotations

import json
import re

import httpx
import pytest
from pydantic import ValidationError

from retarget.demo.shop.app import create_app
from retarget.demo.shop.settings import ShopSettings

INGEST = "http://127.0.0.1:18080"


class Shop:
    """The app in process, as a browser asks it."""

    def __init__(self, **overrides: str) -> None:
        write_key = overrides.pop("write_key", "wk_demo")
        settings = ShopSettings(write_key=write_key, ingest_url=INGEST, **overrides)  # type: ignore[arg-type]
        self.transport = httpx.ASGITransport(app=create_app(settings))

    async def get(self, path: str) -> httpx.Response:
        async with httpx.AsyncClient(transport=self.transport, base_url="http://shop.test") as browser:
            return await browser.get(path)


client = Shop


def config_of(html: str) -> dict:
    block = re.search(r'<script type="application/json" id="shop-config">(.*?)</script>', html, re.S)
    assert block, "the page has no configuration block"
    return json.loads(block.group(1))


async def test_the_shop_lists_products_with_the_controls_the_browser_tests_use():
    html = (await client().get("/")).text
    products = re.findall(r'data-testid="add-to-cart" data-product-id="([^"]+)"', html)
    assert len(products) == 4 and len(set(products)) == 4
    for test_id in ("email-form", "checkout", "consent-banner", "consent-accept", "consent-reject"):
        assert f'data-testid="{test_id}"' in html
    assert '<input id="email" name="email" type="email"' in html
    assert 'href="/tracking"' in html and 'href="/preferences"' in html


async def test_segment_is_the_default_and_rudderstack_is_one_switch_away():
    shop = client()
    segment = (await shop.get("/")).text
    assert config_of(segment)["sdk"] == "segment"
    assert '<script src="/vendor/segment.js"></script>' in segment
    for path in ("/?sdk=rudderstack", "/rudder/"):
        page = (await shop.get(path)).text
        assert config_of(page)["sdk"] == "rudderstack"
        assert '<script src="/vendor/rudderstack.js"></script>' in page
        assert "/vendor/segment.js" not in page


async def test_an_unknown_sdk_is_a_clear_400():
    answer = await client().get("/?sdk=gtag")
    assert answer.status_code == 400
    assert "unknown sdk 'gtag'" in answer.text
    assert (await client().get("/preferences?sdk=gtag")).status_code == 400


async def test_the_page_carries_its_settings():
    config = config_of((await client(write_key="wk_123", consent_mode="opt_out").get("/")).text)
    assert config == {
        "sdk": "segment",
        "writeKey": "wk_123",
        "ingestUrl": INGEST,
        "consentMode": "opt_out",
        "preferencesUrl": "/preferences",
    }
    assert (
        config_of((await client().get("/rudder/")).text)["preferencesUrl"] == "/preferences?sdk=rudderstack"
    )
    own = (await client(preferences_url="https://shop.example/privacy").get("/")).text
    assert config_of(own)["preferencesUrl"] == "https://shop.example/privacy"


async def test_the_links_keep_the_visitors_sdk_so_a_withdrawal_reaches_its_ids():
    shop = client()
    for path in (
        "/rudder/",
        "/?sdk=rudderstack",
        "/tracking?sdk=rudderstack",
        "/preferences?sdk=rudderstack",
    ):
        links = set(re.findall(r'<a [^>]*href="([^"]+)"', (await shop.get(path)).text))
        assert links <= {"/?sdk=rudderstack", "/tracking?sdk=rudderstack", "/preferences?sdk=rudderstack"}, (
            path
        )
        assert "/preferences?sdk=rudderstack" in links or path.startswith("/preferences"), path
    segment = set(re.findall(r'<a [^>]*href="([^"]+)"', (await shop.get("/tracking")).text))
    assert segment == {"/", "/preferences"}


async def test_a_preference_centre_of_the_shops_own_replaces_the_link():
    own = "https://shop.example/privacy?a=1&b=2"
    html = (await client(preferences_url=own).get("/")).text
    assert 'href="https://shop.example/privacy?a=1&amp;b=2"' in html
    assert 'href="/preferences"' not in html


async def test_nothing_in_a_setting_can_close_the_configuration_block():
    hostile = "</script><script>alert(1)</script><!-- & \u2028"
    html = (await client(write_key=hostile).get("/")).text
    assert "<script>alert(1)" not in html and "<!-- &" not in html
    assert config_of(html)["writeKey"] == hostile  # still the same value once parsed


async def test_every_answer_carries_a_strict_csp_naming_only_the_shop_and_ingest():
    shop = client()
    for path in ("/", "/rudder/", "/tracking", "/preferences", "/static/tracker.js", "/healthz", "/nope"):
        answer = await shop.get(path)
        csp = dict(
            directive.strip().split(" ", 1)
            for directive in answer.headers["content-security-policy"].split(";")
        )
        assert csp["script-src"] == "'self'", path
        assert csp["connect-src"] == f"'self' {INGEST}", path
        assert csp["default-src"] == "'self'" and csp["object-src"] == "'none'", path
        assert answer.headers["x-content-type-options"] == "nosniff", path


async def test_the_pages_need_no_inline_script_or_style():
    shop = client()
    for path in ("/", "/tracking", "/preferences"):
        html = (await shop.get(path)).text
        scripts = re.findall(r"<script([^>]*)>(.*?)</script>", html, re.S)
        # the CSP allows scripts from the shop only: each has a src, or is the JSON data block
        assert all('src="/' in attrs or 'type="application/json"' in attrs for attrs, _ in scripts), path
        assert " style=" not in html and "<style" not in html, path


async def test_preferences_offers_withdrawal_and_tracking_says_what_is_tracked():
    shop = client()
    assert 'data-testid="consent-withdraw"' in (await shop.get("/preferences")).text
    tracking = (await shop.get("/tracking")).text
    for term in (
        "Product Added",
        "Order Completed",
        "Who receives it",
        "How long we keep it",
        "ajs_anonymous_id",
    ):
        assert term in tracking


async def test_the_shops_scripts_are_served():
    shop = client()
    for name in ("consent.js", "tracker.js", "banner.js", "shop.js", "preferences.js", "shop.css"):
        assert (await shop.get(f"/static/{name}")).status_code == 200, name


async def test_healthz():
    answer = await client().get("/healthz")
    assert answer.status_code == 200 and answer.text == "ok"


@pytest.mark.parametrize(
    "field, value",
    [
        ("ingest_url", "127.0.0.1:18080"),
        ("ingest_url", "ftp://ingest.example"),
        ("ingest_url", "https://ingest.example/v1"),
        ("preferences_url", "javascript:alert(1)"),
        ("preferences_url", "//evil.example/prefs"),
        ("consent_mode", "maybe"),
    ],
)
def test_settings_refuse_what_the_pages_could_not_use(field: str, value: str):
    with pytest.raises(ValidationError, match=field):
        ShopSettings(write_key="wk", **{field: value})  # type: ignore[arg-type]


def test_the_ingest_url_is_kept_as_an_origin():
    assert (
        ShopSettings(write_key="wk", ingest_url="https://ingest.example/").ingest_url
        == "https://ingest.example"
    )  # type: ignore[call-arg]
