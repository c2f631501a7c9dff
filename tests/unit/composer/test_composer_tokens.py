"""The signed link token format shared by composer (signs) and ingest (verifies)."""

from __future__ import annotations

import base64
import json

import pytest

from retarget.common.tokens import InvalidToken, LinkClaims, link_url, sign, verify

SECRET = b"k" * 32
NOW = 1_800_000_000


def claims(**overrides) -> LinkClaims:
    fields = dict(
        kind="click",
        message_id="m-abc",
        workspace_id="ws",
        campaign="abandoned_cart",
        profile_id="p1",
        expires=NOW + 60,
        url="https://shop.example/p/1?x=1&y=2",
    )
    fields.update(overrides)
    return LinkClaims(**fields)


def test_a_signed_token_verifies_and_carries_its_claims():
    token = sign(claims(), SECRET)
    assert set(token) <= set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789-_.")
    assert verify(token, SECRET, now=NOW, kind="click") == claims()


def test_the_payload_is_the_documented_compact_json():
    payload = token_payload(sign(claims(kind="unsubscribe", url=None, recipient_hash="ab"), SECRET))
    assert payload == {
        "k": "unsubscribe",
        "m": "m-abc",
        "w": "ws",
        "c": "abandoned_cart",
        "p": "p1",
        "e": NOW + 60,
        "r": "ab",
    }


def token_payload(token: str) -> dict:
    part = token.split(".")[0]
    return json.loads(base64.urlsafe_b64decode(part + "=" * (-len(part) % 4)))


def test_a_changed_destination_fails_so_the_redirect_cannot_be_repointed():
    mac = sign(claims(), SECRET).split(".")[1]
    forged = json.dumps({**token_payload(sign(claims(), SECRET)), "u": "https://evil.example/"})
    forged_part = base64.urlsafe_b64encode(forged.encode()).rstrip(b"=").decode()
    with pytest.raises(InvalidToken, match="signature"):
        verify(f"{forged_part}.{mac}", SECRET, now=NOW)


@pytest.mark.parametrize(
    "token",
    ["", "nodot", "a.b", "!!!.???", sign(claims(), b"other-secret")],
)
def test_garbage_and_other_keys_are_rejected(token: str):
    with pytest.raises(InvalidToken):
        verify(token, SECRET, now=NOW)


def test_expired_and_wrong_kind_tokens_are_rejected():
    with pytest.raises(InvalidToken, match="expired"):
        verify(sign(claims(), SECRET), SECRET, now=NOW + 61)
    with pytest.raises(InvalidToken, match="click token used as unsubscribe"):
        verify(sign(claims(), SECRET), SECRET, now=NOW, kind="unsubscribe")


@pytest.mark.parametrize(
    "url", [None, "javascript:alert(1)", "//evil.example", "data:text/html,x", "/relative"]
)
def test_only_absolute_http_destinations_are_signed(url: str | None):
    with pytest.raises(ValueError, match="http"):
        sign(claims(url=url), SECRET)


def test_url_shapes_ingest_serves():
    assert link_url("https://t.example/", "open", "TOK") == "https://t.example/t/o/TOK.gif"
    assert link_url("https://t.example", "click", "TOK") == "https://t.example/t/c/TOK"
    assert link_url("https://t.example", "unsubscribe", "TOK") == "https://t.example/t/u/TOK"


DAY = 86400


def test_an_old_genuine_unsubscribe_token_is_honoured_for_the_unsubscribe_ttl():
    year = 400 * DAY
    legacy = sign(claims(kind="unsubscribe", url=None, recipient_hash="ab", expires=NOW + 60 * DAY), SECRET)
    later = NOW + 200 * DAY  # the clock moved 200 days on: past the 60 days it was signed with
    assert verify(legacy, SECRET, now=later, kind="unsubscribe", unsubscribe_ttl_s=year).message_id == "m-abc"
    with pytest.raises(InvalidToken, match="expired"):
        verify(legacy, SECRET, now=NOW + 401 * DAY, kind="unsubscribe", unsubscribe_ttl_s=year)
    click = sign(claims(expires=NOW + 60 * DAY), SECRET)
    with pytest.raises(InvalidToken, match="expired"):  # click tokens keep their TTL
        verify(click, SECRET, now=later, kind="click", unsubscribe_ttl_s=year)
    # a token with an issue time was signed with its own TTL: its expiry is the whole truth
    issued = sign(
        claims(kind="unsubscribe", url=None, recipient_hash="ab", expires=NOW + 60 * DAY, issued=NOW), SECRET
    )
    with pytest.raises(InvalidToken, match="expired"):
        verify(issued, SECRET, now=later, kind="unsubscribe", unsubscribe_ttl_s=year)
