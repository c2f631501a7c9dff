"""The address validator: whatever it accepts is one plain address, safe in a header and in
an SMTP command; nothing with a control character anywhere gets through."""

from __future__ import annotations

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retarget.composer.addresses import BadAddress, clean, parse_address

ATEXT = "abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789!#$%&'*+/=?^_`{|}~-"
CONTROL = [chr(c) for c in (*range(0x20), 0x7F, *range(0x80, 0xA0), 0x2028, 0x2029)]

atoms = st.text(ATEXT, min_size=1, max_size=10)
local_parts = st.lists(atoms, min_size=1, max_size=3).map(".".join)
labels = st.text("abcdefghijklmnopqrstuvwxyz0123456789", min_size=1, max_size=12)
domains = st.builds(
    lambda names, tld: ".".join([*names, tld]),
    st.lists(labels, min_size=1, max_size=3),
    st.text("abcdefghijklmnopqrstuvwxyz", min_size=2, max_size=6),
)
addresses = st.builds(lambda local, domain: f"{local}@{domain}", local_parts, domains)


@given(addresses)
def test_a_plain_address_is_accepted_as_it_is(address: str):
    local, domain = parse_address(address)
    assert f"{local}@{domain}".lower() == address.lower()


@given(addresses, st.sampled_from(CONTROL), st.data())
def test_a_control_character_anywhere_is_refused(address: str, control: str, data: st.DataObject):
    at = data.draw(st.integers(0, len(address)))  # the ends too: a trailing LF was the hole
    with pytest.raises(BadAddress):
        parse_address(address[:at] + control + address[at:])


@given(st.text(max_size=40))
def test_whatever_is_accepted_is_one_line_of_atext(text: str):
    try:
        local, domain = parse_address(text)
    except BadAddress:
        return
    assert all(c in ATEXT + "." for c in local)
    assert all(c in "abcdefghijklmnopqrstuvwxyz0123456789-." for c in domain)


@pytest.mark.parametrize(
    "address", ["ann\n@example.com", "ann@example.com\n", "ann\r@example.com", "ann@example.com\r\n"]
)
def test_a_trailing_line_break_is_refused(address: str):
    with pytest.raises(BadAddress):
        parse_address(address)


@pytest.mark.parametrize("control", ["\r", "\n", "\x00", "\x7f", "\x85", "\x9b", "\u2028", "\u2029"])
def test_clean_makes_one_line_of_any_control_character(control: str):
    """C1 too: NEL (U+0085) ends a line for some parsers, CSI (U+009B) drives terminals."""
    assert clean(f"Ann{control}Smith") == "Ann Smith"


@pytest.mark.parametrize(
    "address",
    [
        "a" * 65 + "@example.com",  # RFC 5321: a local part is at most 64 octets
        "a@" + ".".join(["b" * 60] * 5) + ".com",  # a path is at most 254
        "ann@example.c0m",  # a top-level domain is letters (or an xn-- label)
        "ann@example.1",
    ],
)
def test_what_rfc_5321_or_dns_would_not_take_is_refused(address: str):
    with pytest.raises(BadAddress):
        parse_address(address)
