"""The link token codec: what it signs it verifies, and each token has exactly one accepted
spelling (property tests: any other string, including another base64 spelling of the same
bytes, is refused)."""

from __future__ import annotations

import base64

import pytest
from hypothesis import given
from hypothesis import strategies as st

from retarget.common.tokens import InvalidToken, LinkClaims, sign, verify

SECRET = b"s" * 32
NOW = 1_800_000_000
B64URL = "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_"

text = st.text(st.characters(codec="utf-8", exclude_categories=("Cs",)), max_size=40)
claims = st.builds(
    LinkClaims,
    kind=st.sampled_from(["open", "click", "unsubscribe"]),
    message_id=text,
    workspace_id=text,
    campaign=text,
    profile_id=text,
    expires=st.integers(NOW, 2**53),
    recipient_hash=st.none() | st.text("0123456789abcdef", min_size=64, max_size=64),
).map(lambda c: c if c.kind != "click" else LinkClaims(**{**_fields(c), "url": "https://shop.example/p"}))


def _fields(c: LinkClaims) -> dict:
    return {name: getattr(c, name) for name in c.__struct_fields__}


def _lenient(part: str) -> bytes:
    """What a forgiving decoder makes of a part (the bug this codec must not have)."""
    return base64.b64decode(part.replace("-", "+").replace("_", "/") + "==", validate=False)


@given(claims)
def test_verify_returns_exactly_what_was_signed(c: LinkClaims) -> None:
    assert verify(sign(c, SECRET), SECRET, now=NOW) == c


@given(claims, st.data())
def test_any_other_string_is_refused(c: LinkClaims, data: st.DataObject) -> None:
    token = sign(c, SECRET)
    position = data.draw(st.integers(0, len(token)))
    edit = data.draw(st.sampled_from(["insert", "replace", "delete"]))
    char = data.draw(st.sampled_from(B64URL + "=+/. \n%"))
    if edit == "insert":
        mutated = token[:position] + char + token[position:]
    elif edit == "replace":
        mutated = token[:position] + char + token[position + 1 :]
    else:
        mutated = token[:position] + token[position + 1 :]
    if mutated != token:
        with pytest.raises(InvalidToken):
            verify(mutated, SECRET, now=NOW)


def _alternate_spellings(part: str) -> list[str]:
    """Other base64 spellings of the same bytes: padded, the standard alphabet, and the
    last character with different unused low bits."""
    data = _lenient(part)
    spellings = [part + "=" * (-len(part) % 4) or part + "====", base64.b64encode(data).decode().rstrip("=")]
    unused_bits = {2: 4, 3: 2}.get(len(part) % 4, 0)
    if unused_bits:
        last = B64URL.index(part[-1])
        spellings += [part[:-1] + B64URL[last ^ bit] for bit in range(1, 2**unused_bits)]
    return [s for s in spellings if s != part]


@given(claims, st.booleans())
def test_other_spellings_of_the_same_bytes_are_refused(c: LinkClaims, mac_part: bool) -> None:
    token = sign(c, SECRET)
    payload, mac = token.split(".")
    part = mac if mac_part else payload
    for spelling in _alternate_spellings(part):
        assert _lenient(spelling) == _lenient(part)  # a real second spelling of the same bytes
        forged = f"{payload}.{spelling}" if mac_part else f"{spelling}.{mac}"
        with pytest.raises(InvalidToken, match="malformed"):
            verify(forged, SECRET, now=NOW)
