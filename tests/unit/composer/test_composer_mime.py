"""The hand-written RFC 5322 writer: valid MIME, exact headers, nothing injectable."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email.policy import default as default_policy

import pytest

from retarget.composer.addresses import BadAddress, mailbox, parse_address
from retarget.composer.message import Envelope, build_message

LONG_URL = "https://track.example/t/u/" + "A" * 300


def envelope(**overrides) -> Envelope:
    fields = dict(
        from_email="news@boots.example",
        from_name="Boot Shop",
        to_email="ann@example.com",
        to_name="Ann",
        reply_to=None,
        message_id="<m-1@boots.example>",
        date=datetime(2026, 3, 1, 12, tzinfo=UTC),
        unsubscribe_url=LONG_URL,
        unsubscribe_mailto="mailto:unsubscribe@boots.example?subject=unsubscribe",
        feedback_id="c:ws:retarget",
    )
    fields.update(overrides)
    return Envelope(**fields)


def build(subject: str = "Hello", text: str = "Hi\n", html: str = "<p>Hi</p>", **env) -> str:
    return build_message(subject, text, html, envelope(**env))


def test_the_message_is_ascii_with_crlf_line_ends_and_short_enough_lines():
    raw = build(text="é" * 500 + "\n" + "x" * 2000, html="<p>" + "y" * 3000 + "</p>")
    assert raw.isascii()
    assert "\n" not in raw.replace("\r\n", "")
    assert max(len(line) for line in raw.split("\r\n")) <= 998


def test_list_unsubscribe_is_written_verbatim_never_encoded():
    raw = build()
    header = raw.split("\r\n\r\n")[0]
    assert f"List-Unsubscribe: <{LONG_URL}>,\r\n <mailto:" in header
    assert "=?utf-8?" not in header


def test_bodies_and_non_ascii_headers_decode_back_exactly():
    text, html = "Grüße, Jörg: 89,50\xa0€\nline two\n", "<p>Grüße &amp; <b>ÿ</b></p>"
    subject = "Jörg, deine Stiefel warten – " + "sehr " * 20
    msg = email.message_from_string(
        build(subject, text, html, to_name='Jörg "J" Müller'), policy=default_policy
    )
    assert msg.get_content_type() == "multipart/alternative"
    assert msg.get_body(("plain",)).get_content().replace("\r\n", "\n") == text
    assert msg.get_body(("html",)).get_content().replace("\r\n", "\n").rstrip("\n") == html
    assert msg["Subject"] == " ".join(subject.split())
    assert msg["To"].addresses[0].display_name == 'Jörg "J" Müller'
    assert msg["To"].addresses[0].addr_spec == "ann@example.com"


def test_a_long_ascii_subject_is_folded_at_spaces():
    subject = " ".join(["word"] * 40)
    raw = build(subject)
    header = raw.split("Subject:", 1)[1].split("\r\nDate:", 1)[0]
    assert header.count("\r\n ") >= 2 and all(len(line) <= 78 for line in header.split("\r\n"))
    assert email.message_from_string(raw, policy=default_policy)["Subject"] == subject


@pytest.mark.parametrize(
    "name",
    ['Ann "The Boss", CEO', "Ann <evil@example.org>", "Ann\r\nBcc: x@example.org", "a\\b"],
)
def test_display_names_with_specials_stay_one_address(name: str):
    msg = email.message_from_string(build(to_name=name), policy=default_policy)
    [address] = msg["To"].addresses
    assert address.addr_spec == "ann@example.com"
    assert msg["Bcc"] is None


@pytest.mark.parametrize(
    "address",
    [
        "plain",
        "@example.com",
        "ann@",
        "ann@localhost",
        "ann@exa mple.com",
        "ann smith@example.com",
        "ann@example.com>, <x@evil.example",
        "ann@example.com\r\nBcc: x@example.org",
        "ann@-bad-.com",
        '"quoted"@example.com',
        "ann@example.123",
        "a" * 65 + "@example.com",
    ],
)
def test_invalid_addresses_are_rejected(address: str):
    with pytest.raises(BadAddress):
        parse_address(address)


def test_valid_addresses_including_idn_domains():
    assert parse_address("Ann.Lee+shop@Example.COM") == ("Ann.Lee+shop", "example.com")
    assert parse_address("ann@bücher.example") == ("ann", "xn--bcher-kva.example")
    assert mailbox("ann@example.com", None) == "ann@example.com"
    assert mailbox("ann@example.com", "Ann Lee") == "Ann Lee <ann@example.com>"
