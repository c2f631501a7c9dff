"""Property tests of the RFC 5322 writer: whatever subject, names and bodies it is given
(CR, LF, NUL, other controls, non-ASCII, text that looks like headers or encoded words),
the message parses back with exactly its own headers, the same values, and the same bodies."""

from __future__ import annotations

import email
from datetime import UTC, datetime
from email.policy import default as default_policy

from hypothesis import example, given, settings
from hypothesis import strategies as st

from retarget.composer.addresses import clean
from retarget.composer.message import Envelope, build_message

HEADERS = [
    "From",
    "To",
    "Reply-To",
    "Subject",
    "Date",
    "Message-ID",
    "MIME-Version",
    "List-Unsubscribe",
    "List-Unsubscribe-Post",
    "Feedback-ID",
    "Content-Type",
]
# any Unicode text a UTF-8 message can carry, with the characters header injection needs
# made frequent
hostile = st.lists(
    st.characters(codec="utf-8", exclude_categories=("Cs",))
    | st.sampled_from(["\r", "\n", "\r\n", "\x00", "\t", ":", "<", ">", '"', "\\", ",", "=?", "?=", " "]),
    max_size=60,
).map("".join)
header_like = st.sampled_from(
    ["x\r\nBcc: evil@example.org", "x\nSubject: other", "=?utf-8?b?QUJD?=", "x\r\n\r\nbody", "\x00"]
)


def envelope(from_name: str, to_name: str) -> Envelope:
    return Envelope(
        from_email="news@boots.example",
        from_name=from_name,
        to_email="ann@example.com",
        to_name=to_name,
        reply_to="help@boots.example",
        message_id="<m-1@boots.example>",
        date=datetime(2026, 3, 1, 12, tzinfo=UTC),
        unsubscribe_url="https://track.example/t/u/TOKEN",
        unsubscribe_mailto="mailto:unsubscribe@boots.example?subject=unsubscribe%20TOKEN",
        feedback_id="c:ws:retarget",
    )


def same_name(parsed: str, written: str) -> bool:
    """Equal, except that Python's address parser keeps the folding whitespace between two
    encoded words of a long non-ASCII name, which RFC 2047 (6.2) says readers drop."""
    if parsed == written:
        return True
    several_words = not written.isascii() and len(written.encode()) > 45
    return several_words and "".join(parsed.split()) == "".join(written.split())


def body(text: str) -> str:
    """What a body reads as after the round trip: line ends normalised to LF."""
    return text.replace("\r\n", "\n").replace("\r", "\n")


@settings(max_examples=300, deadline=None)
@given(hostile | header_like, hostile | header_like, hostile | header_like, hostile, hostile)
@example("=?utf-8?b?QUJD?=", "=?utf-8?q?Boss?=", "x", "t", "h")  # look like encoded words
@example("Hi\r\nBcc: evil@example.org", 'Ann\r\n"x" <evil@example.org>', "Shop\x00", "a\rb\n", "\x00")
def test_any_input_parses_back_with_its_own_headers_and_values(
    subject: str, to_name: str, from_name: str, text: str, html: str
) -> None:
    raw = build_message(subject, text, html, envelope(from_name, to_name))
    assert raw.isascii() and "\n" not in raw.replace("\r\n", "") and "\x00" not in raw
    assert max(len(line) for line in raw.split("\r\n")) <= 998

    msg = email.message_from_string(raw, policy=default_policy)
    assert list(msg.keys()) == HEADERS  # nothing injected, nothing lost
    assert msg["Subject"] == clean(subject)
    [to] = msg["To"].addresses
    [sender] = msg["From"].addresses
    assert to.addr_spec == "ann@example.com" and same_name(to.display_name, clean(to_name))
    assert sender.addr_spec == "news@boots.example" and same_name(sender.display_name, clean(from_name))
    assert msg["List-Unsubscribe"] == (
        "<https://track.example/t/u/TOKEN>, <mailto:unsubscribe@boots.example?subject=unsubscribe%20TOKEN>"
    )
    plain, rich = msg.get_body(("plain",)), msg.get_body(("html",))
    assert body(plain.get_content()) == body(text) and body(rich.get_content()) == body(html)
