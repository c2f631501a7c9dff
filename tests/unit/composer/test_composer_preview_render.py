"""render_preview: a draft or the current template, for a sample or a given profile, through
the real compose path, with links nobody accepts."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import pytest

from retarget.common.tokens import verify
from retarget.common.workspaces import Workspace
from retarget.composer.preview import render_preview

SHOP = Workspace("ws-a", "Hat Shop", "Hat Shop", "news@hats.example", "2 High St, Shelbyville")
DRAFT = {
    "subject": "{{ recipient.first_name }}, your hat",
    "html": '{% extends "base.html" %}{% block content %}<a href="https://hats.example/h">{{ cart[0].name }}</a>{% endblock %}',
    "text": None,
}


@dataclass(frozen=True)
class Record:
    version: int
    deleted: bool
    body: dict[str, Any] | None


class Records:
    def __init__(self, **bodies: dict[str, Any]) -> None:
        self.bodies = bodies

    def current(self, workspace_id: str, kind: str, name: str = "") -> Record | None:
        body = self.bodies.get(name) if workspace_id == SHOP.id else None
        return Record(7, False, body) if body else None


def test_a_draft_renders_for_the_sample_profile_with_the_workspaces_sender():
    preview = render_preview(SHOP, "abandoned_cart", DRAFT, None)
    assert preview["subject"] == "Ann, your hat"
    assert "Trail Boot" in (preview["html"] or "") and "Hat Shop · 2 High St" in (preview["html"] or "")
    assert "Trail Boot" in (preview["text"] or "")  # derived from the HTML, as in a real message


def test_a_given_profile_replaces_the_sample():
    profile = {"recipient": {"email": "jo@example.de", "first_name": "Jo", "locale": "de-DE"}}
    assert render_preview(SHOP, "abandoned_cart", DRAFT, profile)["subject"] == "Jo, your hat"


def test_without_a_draft_the_current_version_renders_else_the_bundled_one():
    records = Records(abandoned_cart={**DRAFT, "subject": "stored for {{ recipient.first_name }}"})
    assert render_preview(SHOP, "abandoned_cart", None, None, records=records)["subject"] == "stored for Ann"
    assert (
        render_preview(SHOP, "abandoned_cart", None, None)["subject"]
        == "Ann, you left something in your cart"
    )


def test_a_preview_links_are_signed_with_a_key_no_service_holds():
    html = render_preview(SHOP, "abandoned_cart", DRAFT, None)["html"] or ""
    assert "https://preview.invalid/t/c/" in html and "https://hats.example/h" not in html
    token = html.split("https://preview.invalid/t/c/")[1].split('"')[0]
    with pytest.raises(ValueError):
        verify(token, b"the-real-link-secret", now=0, kind="click")


def test_a_broken_draft_names_field_and_line():
    with pytest.raises(ValueError, match=r"^field html: line 1: .*nope"):
        render_preview(SHOP, "abandoned_cart", {**DRAFT, "html": "{{ nope }}"}, None)


def test_a_profile_missing_what_the_template_needs_names_the_variable():
    with pytest.raises(ValueError, match=r"^field html: line 1: list object has no element 0"):
        render_preview(SHOP, "abandoned_cart", DRAFT, {"cart": []})
