"""Signed tokens for tracking links: the open pixel, click redirects and unsubscribe.

The composer writes them; ingest serves them at three URL shapes under its public URL:

    GET  {public_url}/t/o/<token>.gif   open pixel (a 1x1 GIF)
    GET  {public_url}/t/c/<token>       click: 302 to the destination signed into the token
    GET  {public_url}/t/u/<token>       unsubscribe page (visible link in the footer)
    POST {public_url}/t/u/<token>       RFC 8058 one-click unsubscribe (List-Unsubscribe-Post)

Token format, version 1 (URL-safe, no padding, no characters that need escaping; a token
has exactly one accepted spelling: any other base64 spelling of the same bytes is refused):

    token   = b64url(payload) "." b64url(mac)
    payload = compact JSON object, keys:
                k  kind: "open" | "click" | "unsubscribe"
                m  message id (the send-log key, "m-<trigger id>")
                w  workspace id        c  campaign        p  profile id
                e  expiry, unix seconds
                i  issue time, unix seconds (optional: tokens signed before it was added lack it)
                u  click destination, an absolute http(s) URL      (click only)
                r  hex sha256 of the normalised recipient address   (unsubscribe only;
                   the same digest the suppression list stores, so no address in the URL)
    mac     = HMAC-SHA256(link secret, payload bytes), first 16 bytes (128 bits, as in
              RFC 4868's truncated HMAC-SHA-256-128)

The click destination travels inside the signed payload, so a redirect can never be pointed
anywhere the composer did not sign (no open redirect), and a forged, altered, expired or
wrong-kind token simply fails `verify`. Only http and https destinations are ever signed or
accepted. Adding an optional key keeps the format; anything else needs a new version.

Unsubscribe tokens outlive the others (RETARGET_UNSUBSCRIBE_TTL_DAYS, 400 days by default): the
composer signs them with that expiry, and `verify` also honours an unsubscribe token signed
before that setting existed — with the 60-day link TTL and no issue time — until its issue
time (expiry − 60 days) plus the unsubscribe TTL. An unsubscribe can only ever remove its own
recipient, so honouring an old genuine one is safe; refusing it would break the law's promise.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any, Literal
from urllib.parse import urlsplit

import msgspec

LinkKind = Literal["open", "click", "unsubscribe"]
MAC_BYTES = 16
_PATHS: dict[str, tuple[str, str]] = {
    "open": ("/t/o/", ".gif"),
    "click": ("/t/c/", ""),
    "unsubscribe": ("/t/u/", ""),
}


class InvalidToken(ValueError):
    pass


class LinkClaims(
    msgspec.Struct,
    omit_defaults=True,
    rename={
        "kind": "k",
        "message_id": "m",
        "workspace_id": "w",
        "campaign": "c",
        "profile_id": "p",
        "expires": "e",
        "url": "u",
        "recipient_hash": "r",
        "issued": "i",
    },
):
    kind: LinkKind
    message_id: str
    workspace_id: str
    campaign: str
    profile_id: str
    expires: int  # unix seconds
    url: str | None = None  # click destination
    recipient_hash: str | None = None  # hex sha256 of the normalised address (unsubscribe)
    issued: int | None = None  # unix seconds; None in tokens signed before it was added


LEGACY_LINK_TTL_S = 60 * 86400  # the one link TTL tokens without an issue time were signed with


_decoder = msgspec.json.Decoder(LinkClaims)


def is_web_url(url: str) -> bool:
    """True for an absolute http(s) URL with a host: the only destinations a click may have."""
    try:
        parts = urlsplit(url)
    except ValueError:
        return False
    return parts.scheme in ("http", "https") and bool(parts.hostname)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    """The bytes of `text` only if `text` is their one canonical spelling (what _b64 writes).

    base64 decoders forgive a lot: padding, the standard alphabet's "+/", stray characters,
    non-zero unused bits in the last character ("QR" decodes like "QQ"). Each of those would
    be a second spelling of the same signed token, so a link could be varied without the
    secret (to dodge a dedup or a blocklist keyed by the URL). Re-encoding and comparing
    refuses every one of them at once.
    """
    data = base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))
    if _b64(data) != text:
        raise ValueError("not the canonical spelling")
    return data


def _mac(secret: bytes, payload: bytes) -> bytes:
    return hmac.new(secret, payload, hashlib.sha256).digest()[:MAC_BYTES]


def sign(claims: LinkClaims, secret: bytes) -> str:
    if claims.kind == "click" and not (claims.url and is_web_url(claims.url)):
        raise ValueError(f"a click destination must be an absolute http(s) URL, not {claims.url!r}")
    payload = msgspec.json.encode(claims)
    return f"{_b64(payload)}.{_b64(_mac(secret, payload))}"


def honoured_until(claims: LinkClaims, unsubscribe_ttl_s: float | None) -> float:
    """When a genuine token stops working: its signed expiry, and for an unsubscribe token signed
    without an issue time (before unsubscribe tokens had a TTL of their own) its issue time plus
    `unsubscribe_ttl_s`."""
    if claims.kind != "unsubscribe" or unsubscribe_ttl_s is None or claims.issued is not None:
        return claims.expires
    return max(claims.expires, claims.expires - LEGACY_LINK_TTL_S + unsubscribe_ttl_s)


def verify(
    token: str,
    secret: bytes,
    *,
    now: float,
    kind: LinkKind | None = None,
    unsubscribe_ttl_s: float | None = None,
) -> LinkClaims:
    """The claims of a genuine, unexpired token (of `kind`, when given); InvalidToken otherwise.
    `unsubscribe_ttl_s` extends old unsubscribe tokens (see `honoured_until`)."""
    try:
        payload_part, mac_part = token.split(".", 1)
        payload, mac = _unb64(payload_part), _unb64(mac_part)
    except (ValueError, TypeError) as exc:
        raise InvalidToken("malformed token") from exc
    if not hmac.compare_digest(mac, _mac(secret, payload)):
        raise InvalidToken("bad signature")
    try:
        claims = _decoder.decode(payload)
    except msgspec.DecodeError as exc:
        raise InvalidToken("bad payload") from exc
    if honoured_until(claims, unsubscribe_ttl_s) < now:
        raise InvalidToken("expired")
    if kind is not None and claims.kind != kind:
        raise InvalidToken(f"a {claims.kind} token used as {kind}")
    if claims.kind == "click" and not (claims.url and is_web_url(claims.url)):
        raise InvalidToken("click token without an http(s) destination")
    return claims


def link_url(public_url: str, kind: LinkKind, token: str) -> str:
    """The public URL ingest serves for a token of `kind` (see the shapes above)."""
    prefix, suffix = _PATHS[kind]
    return f"{public_url.rstrip('/')}{prefix}{token}{suffix}"


def claims_dict(claims: LinkClaims) -> dict[str, Any]:
    return msgspec.structs.asdict(claims)
