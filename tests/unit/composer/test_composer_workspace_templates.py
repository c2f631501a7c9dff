"""Each workspace renders its own templates: its records over the bundled ones, the version
current at compose time, nothing of another workspace, a bounded compiled-template cache."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email.policy import default as default_policy
from typing import Any

import msgspec
import pytest

from retarget.common.testing import FakeClock
from retarget.common.workspaces import Workspace
from retarget.composer.compose import Composed, ComposeFailed, Composer
from retarget.composer.render import CAMPAIGNS_CACHED, CampaignTemplates
from retarget.composer.samples import sample_trigger
from retarget.config.records import ConfigChange
from retarget.config.testing import FakeConfigFollower

SHOP_A = Workspace("ws-a", "Boot Shop", "Boot Shop", "news@boots.example", "1 Main St, Springfield")
SHOP_B = Workspace("ws-b", "Hat Shop", "Hat Shop", "news@hats.example", "2 High St, Shelbyville")


class Records(FakeConfigFollower):
    """The config feed as the composer sees it, played by hand."""

    def __init__(self) -> None:
        super().__init__(kinds=("template",))
        self._version = 0

    def put(self, workspace_id: str, name: str, body: dict[str, Any] | None) -> None:
        self._version += 1
        when = datetime(2026, 11, 29, tzinfo=UTC)
        self.apply(
            ConfigChange(workspace_id, "template", name, self._version, body is None, body, "test", when)
        )


def compose(records: Records, workspace: Workspace, template: str = "abandoned_cart", **kw: Any) -> Composed:
    composer = Composer(
        kw.pop("templates", None) or CampaignTemplates.from_folder(None, records),
        FakeClock(),
        link_secret=b"unit-test-secret",
        public_url="https://track.example",
        link_ttl=timedelta(days=60),
    )
    trigger = msgspec.structs.replace(
        sample_trigger("abandoned_cart"), workspace_id=workspace.id, template=template
    )
    return composer.compose(trigger, workspace)


def own(subject: str, content: str) -> dict[str, Any]:
    html = '{% extends "base.html" %}{% block content %}' + content + "{% endblock %}"
    return {"subject": subject, "html": html, "text": None}


def test_two_workspaces_render_their_own_template_for_the_same_trigger():
    records = Records()
    records.put(
        "ws-a",
        "abandoned_cart",
        own("A: {{ recipient.first_name }}", "<p>Boots for {{ recipient.first_name }}</p>"),
    )
    a, b = compose(records, SHOP_A), compose(records, SHOP_B)
    assert a.rendered.subject == "A: Ann" and "Boots for Ann" in (a.rendered.html or "")
    assert "Boot Shop · 1 Main St" in (a.rendered.html or "")  # the bundled base.html footer
    assert b.rendered.subject == "Ann, you left something in your cart"  # ws-b inherits the bundled one


def test_the_version_current_at_compose_time_is_rendered():
    records = Records()
    templates = CampaignTemplates.from_folder(None, records)
    records.put("ws-a", "abandoned_cart", own("first", "one"))
    assert compose(records, SHOP_A, templates=templates).rendered.subject == "first"
    records.put("ws-a", "abandoned_cart", own("second", "two"))
    assert compose(records, SHOP_A, templates=templates).rendered.subject == "second"


def test_a_deleted_template_hides_the_bundled_one_and_the_trigger_names_it():
    records = Records()
    records.put("ws-a", "abandoned_cart", None)
    with pytest.raises(ComposeFailed) as failed:
        compose(records, SHOP_A)
    assert failed.value.label == "template"
    assert "template abandoned_cart is deleted in workspace ws-a" in str(failed.value)
    assert compose(records, SHOP_B).rendered.subject  # the other workspace still has it


@pytest.mark.parametrize(
    "include",
    [
        "secret.html",  # ws-b's own template: not ws-a's
        "ws-b\x1f1\x1fsecret.html",  # ws-b's name as the loader spells it
        "ws-b\x1f0\x1fabandoned_cart.html",
        "../templates/base.html",
        "/etc/passwd",
        "../../../../etc/passwd",
    ],
)
def test_a_template_cannot_include_another_workspaces_template_or_a_file(include: str):
    records = Records()
    records.put("ws-b", "secret", {"subject": "s", "html": "B-SECRET", "text": None})
    records.put("ws-a", "abandoned_cart", own("x", "{% include " + repr(include) + " %}"))
    with pytest.raises(ComposeFailed) as failed:
        compose(records, SHOP_A)
    assert "not found" in str(failed.value) and "B-SECRET" not in str(failed.value)
    assert "B-SECRET" in (compose(records, SHOP_B, template="secret").rendered.html or "")  # its owner can


def test_a_template_includes_its_own_workspaces_templates_and_the_bundled_blocks():
    records = Records()
    records.put(
        "ws-a", "footer_note", {"subject": "-", "html": "A-NOTE {{ recipient.first_name }}", "text": None}
    )
    records.put("ws-b", "footer_note", {"subject": "-", "html": "B-NOTE", "text": None})
    content = '{% from "_blocks.html" import button %}{{ button(links.shop, "Shop") }}{% include "footer_note.html" %}'
    records.put("ws-a", "abandoned_cart", own("x", content))
    html = compose(records, SHOP_A).rendered.html or ""
    assert "A-NOTE Ann" in html and "B-NOTE" not in html and ">Shop<" in html


def test_the_layouts_stay_bundled_whatever_a_workspace_names_its_template():
    records = Records()
    records.put("ws-a", "base", {"subject": "s", "html": "EVIL LAYOUT", "text": "EVIL"})
    records.put("ws-a", "abandoned_cart", own("x", "mine"))
    html = compose(records, SHOP_A).rendered.html or ""
    assert "EVIL" not in html and "Boot Shop · 1 Main St" in html


def test_a_text_only_template_makes_a_plain_text_message():
    records = Records()
    text = '{% extends "base.txt" %}{% block content %}Hi {{ recipient.first_name }}{% endblock %}'
    records.put("ws-a", "abandoned_cart", {"subject": "plain", "html": None, "text": text})
    composed = compose(records, SHOP_A)
    message = email.message_from_string(composed.outbound.raw, policy=default_policy)
    assert message.get_content_type() == "text/plain" and composed.rendered.html is None
    assert "Hi Ann" in message.get_content() and "/t/u/" in message.get_content()  # footer: unsubscribe


def test_compiled_templates_are_cached_per_workspace_and_version_least_recently_used_out():
    records = Records()
    templates = CampaignTemplates.from_folder(None, records, cache_size=2)
    records.put("ws-a", "abandoned_cart", own("a1", "x"))
    compose(records, SHOP_A, templates=templates)
    compose(records, SHOP_A, templates=templates)
    assert templates.cache_info().hits == 1  # same workspace, same version: compiled once
    compose(records, SHOP_B, templates=templates)
    records.put("ws-a", "abandoned_cart", own("a2", "x"))
    assert compose(records, SHOP_A, templates=templates).rendered.subject == "a2"
    assert templates.cache_info().currsize == 2 and templates.cache_info().misses == 3
    assert CAMPAIGNS_CACHED >= 1_000 * 5  # 1,000 workspaces with 5 templates each fit


def test_a_workspace_id_holding_the_name_separator_reaches_nothing():
    records = Records()
    records.put("ws-b", "abandoned_cart", own("B-SUBJECT", "B"))
    crafted = Workspace("ws-b\x1f1", "X", "X", "news@x.example", "1 X St")
    records.put(crafted.id, "abandoned_cart", own("x", "{% include 'abandoned_cart.html' %}"))
    with pytest.raises(ComposeFailed, match="not found"):
        compose(records, crafted)


def test_a_record_whose_part_is_not_text_is_a_missing_template_not_a_crash():
    records = Records()
    records.put("ws-a", "abandoned_cart", {"subject": 42, "html": "x", "text": None})
    with pytest.raises(ComposeFailed) as failed:
        compose(records, SHOP_A)
    assert failed.value.label == "template" and "abandoned_cart.subject.txt not found" in str(failed.value)


def test_workspaces_that_keep_a_bundled_template_share_one_compiled_copy():
    records = Records()
    templates = CampaignTemplates.from_folder(None, records)
    for shop in (SHOP_A, SHOP_B, SHOP_A):
        assert (
            compose(records, shop, templates=templates).rendered.subject
            == "Ann, you left something in your cart"
        )
    assert (templates.cache_info().misses, templates.cache_info().currsize) == (1, 1)


def test_the_compiled_templates_cache_is_bounded_by_size_not_only_by_count() -> None:
    follower = FakeConfigFollower(kinds=["template"])
    dense = "{{ recipient.first_name }}" + "{{ 1 }}x" * 1_200  # ~10,000 characters
    templates = CampaignTemplates.from_folder(
        None, follower, cache_size=CAMPAIGNS_CACHED, cache_chars=100_000
    )
    for version in range(1, 21):
        body = {"subject": "s", "html": None, "text": f"{version}{dense}"}
        follower.apply(
            ConfigChange("ws-a", "template", "promo", version, False, body, "t", datetime.now(UTC))
        )
        templates.render("promo", {"recipient": {"first_name": "A"}}, "ws-a")
    assert templates.cache_info().currsize <= 10  # 20 versions of 10,000 characters: 10 fit
