"""Every shipped campaign renders from the segmenter's data shapes; missing required data,
hostile data and hostile templates are refused; links are tracked; prices are localised."""

from __future__ import annotations

import email
import re
from datetime import timedelta
from email.policy import default as default_policy
from pathlib import Path

import pytest

from retarget.common.testing import FakeClock
from retarget.common.tokens import verify
from retarget.composer.compose import ComposeFailed, Composer
from retarget.composer.environment import BUNDLED_TEMPLATES
from retarget.composer.html_text import html_to_text
from retarget.composer.render import CampaignTemplates
from retarget.composer.samples import CAMPAIGNS, SAMPLE_WORKSPACE, sample_trigger

SECRET = b"campaign-tests"
PUBLIC = "https://track.example"


def composer(templates: Path | None = None) -> Composer:
    return Composer(
        CampaignTemplates.from_folder(templates),
        FakeClock(),
        link_secret=SECRET,
        public_url=PUBLIC,
        link_ttl=timedelta(days=60),
    )


def compose(campaign: str, profile: dict | None = None, templates: Path | None = None):
    composed = composer(templates).compose(sample_trigger(campaign, profile), SAMPLE_WORKSPACE)
    return composed, email.message_from_string(composed.outbound.raw, policy=default_policy)


EXPECTED = {
    "abandoned_cart": ("Ann, you left something in your cart", ["Trail Boot", "€89.50", "10% off", "RT-"]),
    "browse_abandonment": ("Ann, still thinking about Trail Boot?", ["Trail Boot", "Wool Socks", "€12.00"]),
    "trial_not_converted": ("20% off Pro: keep what you started", ["February 15, 2026", "20% off", "RT-"]),
    "post_purchase": ("Thank you for your order, Ann", ["o-1001", "€113.50", "15% off", "RT-"]),
    "repeat_abandoner_survey": ("Ann, can we ask you one question?", ["what stopped you"]),
}


@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_every_sample_campaign_renders_a_complete_message(campaign: str):
    _, msg = compose(campaign)
    subject, snippets = EXPECTED[campaign]
    assert msg["Subject"] == subject
    text = msg.get_body(("plain",)).get_content()
    html = msg.get_body(("html",)).get_content()
    for snippet in snippets:
        assert snippet in text and snippet in html
    for footer in ("Boot Shop", "1 Main St, Springfield", "Unsubscribe"):
        assert footer in text and footer in html
    assert f"{PUBLIC}/t/o/" in html and "{{" not in html and "None" not in text


@pytest.mark.parametrize("campaign", CAMPAIGNS)
def test_every_link_in_every_campaign_is_a_signed_tracking_link(campaign: str):
    composed, msg = compose(campaign)
    html = msg.get_body(("html",)).get_content()
    hrefs = re.findall(r'href="([^"]*)"', html)
    assert hrefs
    for href in hrefs:
        assert href.startswith((f"{PUBLIC}/t/c/", f"{PUBLIC}/t/u/")), href
        kind = "click" if "/t/c/" in href else "unsubscribe"
        claims = verify(href.rsplit("/", 1)[1], SECRET, now=FakeClock().timestamp(), kind=kind)
        assert claims.message_id == composed.outbound.message_id and claims.campaign == campaign
    text = msg.get_body(("plain",)).get_content()
    assert all(url.startswith(f"{PUBLIC}/t/") for url in re.findall(r"https?://\S+?(?=[\s)]|$)", text))


def test_the_survey_url_becomes_a_click_link_to_exactly_that_url():
    composed, _ = compose("repeat_abandoner_survey")
    assert "https://boots.example/survey?src=email" in composed.destinations


@pytest.mark.parametrize(
    ("campaign", "profile"),
    [
        ("browse_abandonment", {"data": {}}),
        ("browse_abandonment", {"data": {"products": []}}),
        ("browse_abandonment", {"data": {"products": [{"price": 3}]}}),  # a product without a name
        ("trial_not_converted", {"data": {}}),
        ("post_purchase", {"data": {"order": {"revenue": 10}}}),  # no order id
        ("repeat_abandoner_survey", {"data": {}}),
        ("repeat_abandoner_survey", {"data": {"survey_url": "javascript:alert(1)"}}),
    ],
)
def test_missing_required_data_fails_as_a_missing_variable(campaign: str, profile: dict):
    with pytest.raises(ComposeFailed) as failed:
        compose(campaign, profile)
    assert failed.value.label == "missing_variable"
    assert re.search(rf"{campaign}\.(subject\.txt|html):\d+", str(failed.value))


def test_a_trial_without_a_plan_and_order_lines_without_names_still_render():
    _, msg = compose("trial_not_converted", {"data": {"trial": {"started_at": None}}, "incentive": {}})
    assert msg["Subject"] == "Your trial has ended: keep what you started"
    assert "None" not in msg.get_body(("plain",)).get_content()
    order = {"order_id": "o-9", "products": [{"price": 5}, {"name": "Lace", "price": 2, "currency": "EUR"}]}
    _, msg = compose("post_purchase", {"data": {"order": order}})
    text = msg.get_body(("plain",)).get_content()
    assert "o-9" in text and "Lace" in text and "€2.00" in text


def test_data_of_the_wrong_shape_fails_as_bad_data():
    with pytest.raises(ComposeFailed) as failed:
        compose("browse_abandonment", {"data": {"products": {"name": "not a list"}}})
    assert failed.value.label == "bad_data" and "data.products must be a list" in str(failed.value)


def test_optional_fields_may_be_missing():
    product = {"name": "Bare Boot"}  # no price, currency, url or image
    _, msg = compose(
        "browse_abandonment", {"data": {"products": [product]}, "recipient": {"email": "x@y.example"}}
    )
    text = msg.get_body(("plain",)).get_content()
    assert msg["Subject"] == "Still thinking about Bare Boot?"
    assert "Hi there" in text and "None" not in text


def test_hostile_product_urls_never_become_links():
    evil = {"name": "Boot", "url": "javascript:alert(1)", "image_url": "data:image/png;base64,xx"}
    composed, msg = compose("browse_abandonment", {"data": {"products": [evil]}})
    html = msg.get_body(("html",)).get_content()
    assert "javascript:" not in html and "data:image" not in html
    assert set(composed.destinations) == {"https://boots.example/"}  # the shop link instead


def test_prices_and_dates_follow_the_recipient_locale():
    german = {"recipient": {"email": "j@example.de", "first_name": "Jörg", "locale": "de-DE"}}
    _, msg = compose("post_purchase", german)
    text = msg.get_body(("plain",)).get_content()
    assert "113,50\xa0€" in text and "89,50\xa0€" in text
    _, msg = compose(
        "trial_not_converted", {**german, "data": {"trial": {"plan": "Pro", "started_at": "2026-02-15"}}}
    )
    assert "15. Februar 2026" in msg.get_body(("plain",)).get_content()
    _, msg = compose("abandoned_cart", {"recipient": {"email": "a@example.com", "locale": "xx-nowhere"}})
    assert "€89.50" in msg.get_body(("plain",)).get_content()  # unknown locale: English


HOSTILE_TEMPLATES = {
    "dunder": "{{ ''.__class__.__mro__[1].__subclasses__() }}",
    "globals": "{{ cycler.__init__.__globals__.os.environ }}",
    "mutation": "{{ data.update({'x': 1}) }}",
    "memory": "{{ 'x' * 1000000000 }}",
    "power": "{{ 10 ** 100000000 }}",
    "file": "{% include '/etc/passwd' %}",
    "parent": "{% include '../render.py' %}",
}


@pytest.mark.parametrize("name", HOSTILE_TEMPLATES)
def test_a_template_cannot_reach_python_files_or_memory(tmp_path: Path, name: str):
    (tmp_path / "x.subject.txt").write_text("Hi")
    (tmp_path / "x.html").write_text(HOSTILE_TEMPLATES[name])
    with pytest.raises(ComposeFailed) as failed:
        composer(tmp_path).compose(sample_trigger("x"), SAMPLE_WORKSPACE)
    assert failed.value.label in ("template", "missing_variable", "template_limit")
    assert "x.html" in str(failed.value)


def test_a_syntax_error_names_file_and_line(tmp_path: Path):
    (tmp_path / "x.subject.txt").write_text("Hi")
    (tmp_path / "x.html").write_text("<p>\n\n{% if %}</p>")
    with pytest.raises(ComposeFailed, match=r"x\.html:3"):
        composer(tmp_path).compose(sample_trigger("x"), SAMPLE_WORKSPACE)


def test_bundled_templates_all_extend_the_base_layout():
    for campaign in CAMPAIGNS:
        assert '{% extends "base.html" %}' in (BUNDLED_TEMPLATES / f"{campaign}.html").read_text()


def test_html_to_text_keeps_labels_links_and_lists_and_drops_hidden_parts():
    html = (
        "<html><head><title>T</title><style>p {}</style></head><body>"
        '<div style="display:none">preheader</div><h1>Hello &amp; welcome</h1>'
        '<p>Buy <a href="https://x.example/a?b=1&amp;c=2">this</a> now.</p>'
        "<ul><li>one</li><li>two</li></ul><table><tr><td>A</td><td>€1</td></tr></table>"
        '<img src="https://x.example/i.png" alt="pic"><a href="https://x.example/">https://x.example/</a></body></html>'
    )
    assert html_to_text(html) == (
        "Hello & welcome\n\nBuy this (https://x.example/a?b=1&c=2) now.\n\n- one\n- two\n\nA €1\n\nhttps://x.example/\n"
    )
