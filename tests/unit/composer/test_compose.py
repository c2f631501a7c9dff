"""Composer rules with fakes: what a rendered message contains, and what gets dead-lettered."""

from __future__ import annotations

import email
from datetime import UTC, datetime, timedelta
from email.policy import default as default_policy
from pathlib import Path
from types import SimpleNamespace

import msgspec

from retarget.common.schemas import CartLine, OutboundMessage, Recipient, TriggerFired, encode
from retarget.common.testing import FakeClock
from retarget.common.tokens import verify
from retarget.common.topics import Topics
from retarget.common.workspaces import Workspace
from retarget.composer.compose import Composer
from retarget.composer.render import make_environment
from retarget.composer.workspaces import UnknownWorkspace

SECRET = b"unit-test-secret"
SENDER = Workspace("ws", "Boot Shop", "Boot Shop", "news@boots.example", "1 Main St, Springfield")


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


def composer(templates: Path | None = None) -> Composer:
    return Composer(
        make_environment(templates),
        FakeWorkspaces(),
        Topics("t"),
        FakeClock(),
        link_secret=SECRET,
        public_url="https://track.example",
        link_ttl=timedelta(days=60),
    )


def record(value: bytes) -> SimpleNamespace:
    return SimpleNamespace(topic="t.triggers.v1", partition=0, offset=7, key=b"ws:anon-1", value=value)


async def test_a_trigger_becomes_a_complete_compliant_message():
    [out] = await composer().handle([record(encode(trigger()))])
    assert out.topic == "t.outbound.v1" and out.key == b"example.com"
    outbound = msgspec.json.decode(out.value, type=OutboundMessage)
    assert outbound.message_id == "m-" + "t" * 32
    msg = email.message_from_string(outbound.raw, policy=default_policy)
    assert msg["To"] == "Ann <ann@example.com>"
    assert msg["From"] == "Boot Shop <news@boots.example>"
    assert msg["Message-ID"] == f"<m-{'t' * 32}@boots.example>"
    assert msg["List-Unsubscribe-Post"] == "List-Unsubscribe=One-Click"
    https_url = msg["List-Unsubscribe"].split(",")[0].strip("<> ")
    claims = verify(https_url.rsplit("/", 1)[1], SECRET, now=FakeClock().timestamp())
    assert claims.kind == "unsubscribe" and claims.workspace_id == "ws"
    html = msg.get_body(("html",)).get_content()
    assert "Boots &lt;b&gt;" in html  # autoescaped
    assert "1 Main St, Springfield" in html and "Unsubscribe" in html
    text = msg.get_body(("plain",)).get_content()
    assert "EUR 80.00" in text and "RT-" in text


async def test_coupon_is_stable_per_trigger_and_differs_between_triggers():
    c = composer()
    assert c.coupon(trigger()) == c.coupon(trigger())
    assert c.coupon(trigger()) != c.coupon(trigger(trigger_id="u" * 32))


async def test_crlf_in_a_name_never_reaches_a_header():
    evil = Recipient(email="ann@example.com", first_name="Ann\r\nBcc: victim@example.org")
    [out] = await composer().handle([record(encode(trigger(recipient=evil)))])
    raw = msgspec.json.decode(out.value, type=OutboundMessage).raw
    headers = raw.split("\r\n\r\n", 1)[0]
    assert "\r\nBcc:" not in headers
    assert email.message_from_string(raw, policy=default_policy)["Bcc"] is None


async def test_bad_input_goes_to_the_dead_letter_topic_and_the_rest_goes_on(tmp_path: Path):
    bad_address = trigger(recipient=Recipient(email="not-an-address"))
    unknown_ws = trigger(workspace_id="nope")
    outs = await composer().handle(
        [
            record(b"{not json"),
            record(encode(bad_address)),
            record(encode(unknown_ws)),
            record(encode(trigger())),
        ]
    )
    assert [o.topic for o in outs] == ["t.dead-letter.v1"] * 3 + ["t.outbound.v1"]
    reasons = [msgspec.json.decode(o.value)["reason"] for o in outs[:3]]
    assert "undecodable" in reasons[0] and "valid email" in reasons[1] and "unknown workspace" in reasons[2]


async def test_a_template_needing_a_missing_variable_is_dead_lettered_with_file_and_line(tmp_path: Path):
    (tmp_path / "x.subject.txt").write_text("Hi")
    (tmp_path / "x.html").write_text("<p>\n{{ nothing_like_this }}</p>")
    (tmp_path / "x.txt").write_text("hi")
    [out] = await composer(tmp_path).handle([record(encode(trigger(template="x")))])
    letter = msgspec.json.decode(out.value)
    assert out.topic == "t.dead-letter.v1"
    assert "x.html:2" in letter["reason"] and "nothing_like_this" in letter["reason"]
    assert letter["offset"] == 7 and letter["stage"] == "composer"
