"""Links only to the workspace's own domains: product pages, images and the survey from
trigger data are dropped (and counted) when they point anywhere else, and no other link
in the output is signed for a foreign site."""

from __future__ import annotations

import dataclasses
import email
from datetime import timedelta
from email.policy import default as default_policy
from pathlib import Path

import pytest
from prometheus_client import REGISTRY

from retarget.common.testing import FakeClock
from retarget.common.tokens import verify
from retarget.common.workspaces import Workspace
from retarget.composer.compose import ComposeFailed, Composer
from retarget.composer.render import CampaignTemplates
from retarget.composer.samples import SAMPLE_WORKSPACE, sample_trigger

SECRET = b"link-domain-tests"
EVIL = {"name": "Trail Boot", "url": "https://evil.example/login", "image_url": "https://evil.example/i.png"}


def compose(
    campaign: str, profile: dict, workspace: Workspace = SAMPLE_WORKSPACE, templates: Path | None = None
):
    composer = Composer(
        CampaignTemplates.from_folder(templates),
        FakeClock(),
        link_secret=SECRET,
        public_url="https://track.example",
        link_ttl=timedelta(days=60),
    )
    composed = composer.compose(sample_trigger(campaign, profile), workspace)
    msg = email.message_from_string(composed.outbound.raw, policy=default_policy)
    return composed, msg.get_body(("html",)).get_content(), msg.get_body(("plain",)).get_content()


def dropped(reason: str) -> float:
    return REGISTRY.get_sample_value("retarget_composer_links_dropped_total", {"reason": reason}) or 0.0


def test_an_off_domain_product_renders_without_its_link_and_image_and_is_counted():
    before = dropped("off_domain")
    composed, html, text = compose("browse_abandonment", {"data": {"products": [EVIL]}})
    assert "evil.example" not in html and "evil.example" not in text
    assert "Trail Boot" in html and 'alt="Trail Boot"' not in html  # the product image's tag
    assert set(composed.destinations) == {"https://boots.example/"}  # the shop's own link instead
    assert dropped("off_domain") - before == 2


def test_cart_lines_order_products_and_the_survey_are_checked_too():
    before = dropped("off_domain")
    cart = {"cart": [{**EVIL, "product_id": "b1", "price": 1.0, "currency": "EUR", "quantity": 1}]}
    order = {"data": {"order": {"order_id": "o-1", "products": [EVIL]}}}
    survey = {"data": {"survey_url": "https://evil.example/survey"}}
    for campaign, profile in (("abandoned_cart", cart), ("post_purchase", order)):
        composed, html, _ = compose(campaign, profile)
        assert "evil.example" not in html and not any("evil" in d for d in composed.destinations)
    assert dropped("off_domain") - before == 4
    # the survey campaign needs its URL: without an allowed one it is dead-lettered, not sent
    with pytest.raises(ComposeFailed, match="survey_url") as failed:
        compose("repeat_abandoner_survey", survey)
    assert failed.value.label == "missing_variable" and dropped("off_domain") - before == 5


def test_userinfo_and_http_spellings_are_dropped_with_their_reason():
    before = dropped("userinfo"), dropped("scheme")
    product = {
        "name": "Boot",
        "url": "https://boots.example@evil.example/",
        "image_url": "http://boots.example/i",
    }
    _, html, _ = compose("browse_abandonment", {"data": {"products": [product]}})
    assert "evil.example" not in html and "http://boots.example/i" not in html
    assert (dropped("userinfo") - before[0], dropped("scheme") - before[1]) == (1, 1)


def test_configured_domains_and_their_subdomains_are_linked():
    shop = dataclasses.replace(SAMPLE_WORKSPACE, link_domains=("boots.example", "cdn.example"))
    product = {
        "name": "Boot",
        "url": "https://www.boots.example/p/1",
        "image_url": "https://img.cdn.example/1.jpg",
    }
    composed, html, _ = compose("browse_abandonment", {"data": {"products": [product]}}, shop)
    assert 'src="https://img.cdn.example/1.jpg"' in html
    assert "https://www.boots.example/p/1" in composed.destinations


def test_a_template_link_to_another_site_is_not_signed(tmp_path: Path):
    (tmp_path / "t.subject.txt").write_text("Hi")
    (tmp_path / "t.html").write_text(
        '<a href="https://evil.example/x">a</a> <a href="https://boots.example/ok">b</a> {{ links.unsubscribe }}'
    )
    (tmp_path / "t.txt").write_text("see https://evil.example/x and https://boots.example/ok")
    composed, html, text = compose("t", {}, templates=tmp_path)
    assert 'href="#"' in html and "evil.example" not in html
    assert set(composed.destinations) == {"https://boots.example/ok"}
    assert "https://evil.example/x" in text  # plain text stays as written, not through our redirect
    for tracked in composed.destinations.values():
        token = tracked.rsplit("/", 1)[1]
        assert verify(token, SECRET, now=0).url == "https://boots.example/ok"


def test_the_shop_link_is_on_the_first_link_domain_so_it_is_never_dropped():
    shop = dataclasses.replace(SAMPLE_WORKSPACE, link_domains=("store.example",))
    composed, _, _ = compose("browse_abandonment", {"data": {"products": [{"name": "Boot"}]}}, shop)
    assert set(composed.destinations) == {"https://store.example/"}
