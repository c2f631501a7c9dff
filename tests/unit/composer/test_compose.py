"""Composer rules with fakes: what a rendered message contains, and what gets dead-lettered."""

from __future__ import annotations

import email
import hashlib
from datetime import UTC, datetime, timedelta
from email.policy import default as default_policy
from pathlib import Path
from types import SimpleNamespace

import msgspec

from retarget.common.bounces import message_id_of_bounce_address
from retarget.common.schemas import CartLine, OutboundMessage, Recipient, TriggerFired, encode
from retarget.common.testing import FakeClock
from retarget.common.tokens import verify
from retarget.common.topics import Topics
from retarget.common.workspaces import Workspace
from retarget.composer.compose import Composer
from retarget.composer.coupons import CouponIssuer
from retarget.composer.handler import TriggerHandler
from retarget.composer.render import CampaignTemplates
from retarget.composer.testing import FakeCoupons
from retarget.composer.workspaces import UnknownWorkspace

SECRET = b"unit-test-secret"
SENDER = Workspace(
    "ws",
    "Boot Shop",
    "Boot Shop",
    "news@boots.example",
    "1 Main St, Springfield",
    reply_to="help@boots.example",
)


class FakeWorkspaces:
    async def get(self, workspace_id: str) -> Workspace:
        if workspace_id != "ws":
            raise UnknownWorkspace(workspace_id)
        return SENDER


def trigger(**overrides) -> TriggerFired:
    fields = dict(
        trigger_id="t" * 32,
        workspace_id="ws",
        profile_id="anon-1",
        campaign="abandoned_cart",
        template="abandoned_cart",
        reason="test",
        entry_message_id="m1",
        due_at=datetime(2026, 3, 1, tzinfo=UTC),
        fired_at=datetime(2026, 3, 1, tzinfo=UTC),
        recipient=Recipient(email="ann@example.com", first_name="Ann"),
        cart=[
            CartLine(
                product_id="p1", name="Boots <b>", price=80, currency="EUR", url="https://boots.example/p1"
            )
        ],
        incentive={"kind": "percent_off", "value": 10},
    )
    fields.update(overrides)
    return TriggerFired(**fields)


def composer(templates: Path | None = None) -> TriggerHandler:
    return TriggerHandler(
        Composer(
            CampaignTemplates.from_folder(templates),
            FakeClock(),
            link_secret=SECRET,
            public_url="https://track.example",
            link_ttl=timedelta(days=60),
        ),
        FakeWorkspaces(),
        Topics("t"),
        CouponIssuer(FakeCoupons()),
    )


def record(value: bytes) -> SimpleNamespace:
    return SimpleNamespace(topic="t.triggers.v1", partition=0, offset=7, key=b"ws:anon-1", value=value)


async def test_a_trigger_becomes_a_complete_compliant_message():
    [out] = await composer().handle([record(encode(trigger()))])
    # keyed by the recipient's address digest: one recipient, one partition; every domain spread
    assert out.topic == "t.outbound.v1" and out.key == hashlib.sha256(b"ann@example.com").hexdigest().encode()
    outbound = msgspec.json.decode(out.value, type=OutboundMessage)
    assert outbound.message_id == "m-" + "t" * 32
    # the envelope sender names the send-log entry, so a bounce mailed back later finds it
    assert outbound.mail_from.endswith("@boots.example")
    assert message_id_of_bounce_address(outbound.mail_from, SECRET) == outbound.message_id
    assert (outbound.workspace_id, outbound.campaign, outbound.recipient) == (
        "ws",
        "abandoned_cart",
        "ann@example.com",
    )
    msg = email.message_from_string(outbound.raw, policy=default_policy)
    assert msg["To"] == "Ann <ann@example.com>"
    assert msg["From"] == "Boot Shop <news@boots.example>"
    assert msg["Reply-To"] == "Boot Shop <help@boots.example>"
    assert msg["Message-ID"] == f"<m-{'t' * 32}@boots.example>"
    assert msg["Date"] == "Mon, 05 Jan 2026 12:00:00 +0000"
    assert msg["Feedback-ID"] == "abandoned_cart:ws:retarget"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https_url, mailto = (part.strip("<> ") for part in msg["List-Unsubscribe"].split(","))
    assert https_url.startswith("https://track.example/t/u/") and mailto.startswith("mailto:unsubscribe@")
    claims = verify(https_url.rsplit("/", 1)[1], SECRET, now=FakeClock().timestamp(), kind="unsubscribe")
    assert claims.workspace_id == "ws" and claims.message_id == outbound.message_id
    html = msg.get_body(("html",)).get_content()
    assert "Boots &lt;b&gt;" in html  # autoescaped
    assert "1 Main St, Springfield" in html and "Unsubscribe" in html
    assert "https://track.example/t/o/" in html  # open pixel
    assert 'href="https://boots.example/p1"' not in html  # rewritten to a tracked link
    text = msg.get_body(("plain",)).get_content()
    assert "€80.00" in text and "RT-" in text and "1 Main St, Springfield" in text


async def test_a_replayed_trigger_gives_the_same_message_id_and_coupon():
    c = composer().composer
    first, again = c.compose(trigger(), SENDER), c.compose(trigger(), SENDER)
    assert first.outbound.raw == again.outbound.raw


async def test_coupon_is_stable_per_trigger_and_differs_between_triggers():
    c = composer().composer
    assert c.coupon(trigger()) == c.coupon(trigger())
    assert c.coupon(trigger()) != c.coupon(trigger(trigger_id="u" * 32))


async def test_crlf_in_a_name_never_reaches_a_header():
    evil = Recipient(email="ann@example.com", first_name="Ann\r\nBcc: victim@example.org")
    [out] = await composer().handle([record(encode(trigger(recipient=evil)))])
    raw = msgspec.json.decode(out.value, type=OutboundMessage).raw
    headers = raw.split("\r\n\r\n", 1)[0]
    assert "\r\nBcc:" not in headers
    parsed = email.message_from_string(raw, policy=default_policy)
    assert parsed["Bcc"] is None
    assert parsed["Subject"] == "Ann Bcc: victim@example.org, you left something in your cart"


async def test_bad_input_goes_to_the_dead_letter_topic_and_the_rest_goes_on(tmp_path: Path):
    bad_address = trigger(recipient=Recipient(email="not-an-address"))
    header_smuggler = trigger(recipient=Recipient(email="ann@example.com\r\nBcc: x@example.org"))
    unknown_ws = trigger(workspace_id="nope")
    outs = await composer().handle(
        [
            record(b"{not json"),
            record(encode(bad_address)),
            record(encode(unknown_ws)),
            record(encode(header_smuggler)),
            record(encode(trigger())),
        ]
    )
    assert [o.topic for o in outs] == ["t.dead-letter.v1"] * 4 + ["t.outbound.v1"]
    reasons = [msgspec.json.decode(o.value)["reason"] for o in outs[:4]]
    assert "undecodable" in reasons[0] and "valid email" in reasons[1] and "unknown workspace" in reasons[2]
    assert "valid email" in reasons[3]


async def test_a_template_needing_a_missing_variable_is_dead_lettered_with_file_and_line(tmp_path: Path):
    (tmp_path / "x.subject.txt").write_text("Hi")
    (tmp_path / "x.html").write_text("<p>\n{{ nothing_like_this }}</p>")
    (tmp_path / "x.txt").write_text("hi")
    [out] = await composer(tmp_path).handle([record(encode(trigger(template="x")))])
    letter = msgspec.json.decode(out.value)
    assert out.topic == "t.dead-letter.v1"
    assert "x.html:2" in letter["reason"] and "nothing_like_this" in letter["reason"]
    assert letter["offset"] == 7 and letter["stage"] == "composer"


async def test_a_template_raising_a_python_error_is_dead_lettered_not_retried(tmp_path: Path):
    (tmp_path / "x.subject.txt").write_text("Hi")
    (tmp_path / "x.html").write_text("<p>{{ 1 / 0 }}</p>")
    [out] = await composer(tmp_path).handle([record(encode(trigger(template="x")))])
    assert out.topic == "t.dead-letter.v1"
    assert "ZeroDivisionError" in msgspec.json.decode(out.value)["reason"]


async def test_a_workspace_with_a_broken_sender_address_is_dead_lettered():
    class Broken(FakeWorkspaces):
        async def get(self, workspace_id: str) -> Workspace:
            return Workspace("ws", "Shop", "Shop", "no-at-sign", "1 Main St")

    handler = composer()
    handler.workspaces = Broken()
    [out] = await handler.handle([record(encode(trigger()))])
    assert out.topic == "t.dead-letter.v1" and "from_email" in msgspec.json.decode(out.value)["reason"]


async def test_outcomes_are_counted_by_campaign_and_reason():
    from prometheus_client import REGISTRY

    def sample(name: str, **labels: str) -> float:
        return REGISTRY.get_sample_value(name, labels) or 0.0

    before = (
        sample("retarget_composer_rendered_total", campaign="abandoned_cart"),
        sample("retarget_composer_failed_total", campaign="abandoned_cart", reason="bad_recipient"),
        sample("retarget_composer_render_seconds_count", campaign="abandoned_cart"),
    )
    bad = trigger(recipient=Recipient(email="nope"))
    await composer().handle([record(encode(trigger())), record(encode(bad))])
    after = (
        sample("retarget_composer_rendered_total", campaign="abandoned_cart"),
        sample("retarget_composer_failed_total", campaign="abandoned_cart", reason="bad_recipient"),
        sample("retarget_composer_render_seconds_count", campaign="abandoned_cart"),
    )
    assert [a - b for a, b in zip(after, before, strict=True)] == [1, 1, 1]


async def test_a_trigger_id_that_is_not_a_plain_id_never_reaches_the_message_id():
    [out] = await composer().handle([record(encode(trigger(trigger_id="x>\r\nBcc: a@b.example")))])
    assert out.topic == "t.dead-letter.v1" and "trigger_id" in msgspec.json.decode(out.value)["reason"]


async def test_the_recipients_consent_and_timezone_travel_to_the_sender():
    ann = Recipient(email="ann@example.com", first_name="Ann", timezone="Europe/Paris", consent=True)
    [out] = await composer().handle([record(encode(trigger(recipient=ann)))])
    outbound = msgspec.json.decode(out.value, type=OutboundMessage)
    assert (outbound.recipient_timezone, outbound.recipient_consent) == ("Europe/Paris", True)
    [out] = await composer().handle([record(encode(trigger()))])
    assert msgspec.json.decode(out.value, type=OutboundMessage).recipient_consent is None


async def test_unsubscribe_links_outlive_open_and_click_links():
    [out] = await composer().handle([record(encode(trigger()))])
    raw = msgspec.json.decode(out.value, type=OutboundMessage).raw
    parsed = email.message_from_string(raw, policy=default_policy)
    unsubscribe_url = str(parsed["List-Unsubscribe"]).split("<", 1)[1].split(">", 1)[0]
    html = parsed.get_body(("html",)).get_content()  # type: ignore[union-attr]
    open_token = html.split("/t/o/", 1)[1].split(".gif", 1)[0]
    now = FakeClock().timestamp()
    unsubscribe = verify(unsubscribe_url.rsplit("/", 1)[1], SECRET, now=now + 200 * 86400, kind="unsubscribe")
    assert unsubscribe.expires - unsubscribe.issued == 400 * 86400  # type: ignore[operator]
    opened = verify(open_token, SECRET, now=now, kind="open")
    assert (opened.expires - int(now), opened.issued) == (60 * 86400, int(now))
