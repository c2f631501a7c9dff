"""JSON logs never show a raw email address: not in the message, not in an extra field (an
SMTP reply quoting the recipient), not in exception text, and not when it is internationalized."""

from __future__ import annotations

import logging

import orjson
from hypothesis import given
from hypothesis import strategies as st

from retarget.common.logging import JsonFormatter, email_hash, redact

ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-"
# letters and digits of any script, as RFC 6531 allows (also marks: "é" may come decomposed)
unicode_word = st.characters(categories=["L", "M", "N"])
local_chars = st.one_of(st.sampled_from(ATEXT), unicode_word)
locals_ = st.lists(st.text(local_chars, min_size=1, max_size=12), min_size=1, max_size=3).map(".".join)
labels = st.text(
    st.one_of(st.sampled_from("abcdefghijklmnopqrstuvwxyz0123456789"), unicode_word), min_size=1, max_size=12
)
domains = st.builds(
    lambda names, tld: ".".join([*names, tld]),
    st.lists(labels, min_size=1, max_size=3),
    st.text(st.one_of(st.sampled_from("abcdefghijklmnopqrstuvwxyz"), unicode_word), min_size=2, max_size=8),
)
addresses = st.builds(lambda local, domain: f"{local}@{domain}", locals_, domains)
surroundings = st.text(max_size=30)


def formatted(msg: str, **extra: object) -> str:
    record = logging.makeLogRecord({"name": "t", "levelname": "INFO", "msg": msg, **extra})
    return JsonFormatter("test").format(record)


@given(addresses, surroundings, surroundings)
def test_an_address_in_the_message_never_appears_raw(address: str, before: str, after: str):
    line = formatted(before + address + after)
    assert address not in line
    assert address not in orjson.loads(line)["msg"]


@given(
    addresses,
    st.sampled_from(["550 5.1.1 <{}>: Recipient address rejected", "{} ... User unknown", "552 {}"]),
)
def test_an_smtp_reply_in_a_field_never_shows_the_recipient(address: str, reply: str):
    line = formatted("delivery not accepted", reply=reply.format(address), code=550)
    assert address not in line
    assert "<email:" in orjson.loads(line)["reply"]


def test_exception_text_is_redacted_too():
    try:
        raise ValueError("550 5.1.1 <jörg@bücher.example>: mailbox unavailable")
    except ValueError:
        import sys

        line = formatted("failed", exc_info=sys.exc_info())
    assert "jörg" not in line and "bücher" not in line


def test_the_hash_is_the_one_of_the_address_so_lines_still_correlate():
    assert redact("to ann@example.com.") == f"to <email:{email_hash('ann@example.com')}>."
    assert redact("пользователь@пример.рф") == f"<email:{email_hash('пользователь@пример.рф')}>"
    assert redact("version pkg@1.2.3") == "version pkg@1.2.3"  # a one-character TLD: not an address


def test_quoted_local_parts_address_literals_and_overlong_local_parts_are_redacted_whole():
    """RFC 5321 allows them; a reply or an error quoting one must not show it either."""
    for address in (
        '"ann smith"@example.com',
        '"a\\"b"@example.com',
        "ann@[192.0.2.1]",
        "ann@[IPv6:2001:db8::1]",
        "a" * 80 + "@example.com",
    ):
        line = formatted(f"550 5.1.1 <{address}>: Recipient address rejected")
        assert "<email:" in line and "example.com" not in line and "192.0.2" not in line, line
        assert "ann" not in line and "aaaa" not in line and "db8" not in line, line


def test_addresses_in_field_names_and_secret_fields_never_appear():
    line = formatted(
        "sent",
        by_recipient={"ann@example.com": 1},
        authorization="Bearer rt_sk_abcdef",
        secret_key="rt_sk_ghijkl",
        write_key="wk_mnopqr",
        recipients=["bob@example.com", ("carol@example.com",)],
    )
    assert "ann@example.com" not in line and "<email:" in line
    assert "bob@" not in line and "carol@" not in line
    assert "abcdef" not in line and "ghijkl" not in line and "wk_mnopqr" not in line
    assert "rt_sk_XYZ" not in formatted("refused: Authorization: Bearer rt_sk_XYZ")
