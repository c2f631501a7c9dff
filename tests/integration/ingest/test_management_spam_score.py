"""A workspace's own template, applied through the management API on the real stack (the
ConfigService in PostgreSQL and the feed, the workspace's identity in PostgreSQL), previewed
with `?spam_score=true`: the stored version is rendered for the sample profile and scored by
the real SpamAssassin. A spammy one scores above 5 with the rules that hit; a plain one
below 2."""

from __future__ import annotations

import shutil

import httpx
import pytest

from retarget.composer.spam_score import BUNDLED_MAX, SPAM_THRESHOLD
from retarget.composer.testing import SPAMMY_TEMPLATE

pytestmark = pytest.mark.integration

PLAIN = {
    "subject": "{{ recipient.first_name or 'Hi' }}, your cart is still here",
    "html": (
        "{% extends 'base.html' %}{% block content %}<p>Hi {{ recipient.first_name or 'there' }},</p>"
        "<p>The items you picked are still in your cart. We kept them for you, and your size is in "
        "stock for now.</p><p><a href='{{ links.shop }}'>Back to the shop</a></p>{% endblock %}"
    ),
    "text": None,
}


async def test_a_workspaces_applied_template_is_scored_in_its_preview(ingest_url, tenant, secret_key) -> None:
    if shutil.which("spamassassin") is None:
        pytest.fail(
            "SpamAssassin is not installed: `make system-deps` (as root) installs Debian's spamassassin"
        )
    templates = f"/v1/workspaces/{tenant.workspace_id}/templates"
    async with httpx.AsyncClient(base_url=ingest_url, timeout=180) as client:
        client.headers.update({"Authorization": f"Bearer {await secret_key(tenant.workspace_id, 'admin')}"})
        for name, body in (("win_big", SPAMMY_TEMPLATE), ("gentle_reminder", PLAIN)):
            applied = await client.put(f"{templates}/{name}", json=body)
            assert applied.status_code == 200, applied.text

        spammy = await client.post(f"{templates}/win_big/preview", params={"spam_score": "true"})
        assert spammy.status_code == 200, spammy.text
        assert spammy.json()["subject"] == SPAMMY_TEMPLATE["subject"]  # the stored version, rendered
        score = spammy.json()["spam_score"]
        assert score["score"] > SPAM_THRESHOLD and score["threshold"] == SPAM_THRESHOLD
        hits = {rule["name"]: rule for rule in score["rules"]}
        assert hits["DEAR_FRIEND"]["points"] > 1 and hits["DEAR_FRIEND"]["description"]

        plain = await client.post(f"{templates}/gentle_reminder/preview", params={"spam_score": "true"})
        assert plain.status_code == 200, plain.text
        assert plain.json()["spam_score"]["score"] < BUNDLED_MAX, plain.json()["spam_score"]
