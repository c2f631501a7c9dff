"""Signed tokens for tracking links (open pixel, click redirect, unsubscribe).

The composer writes them, ingest serves them. A token is base64url(JSON payload) + "." +
base64url(HMAC-SHA256(secret, payload)). The click destination travels inside the signed
payload, so the redirect can never be pointed elsewhere (no open redirect), and a forged,
altered or expired token simply fails `verify`.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from typing import Any

import msgspec


class InvalidToken(ValueError):
    pass


class LinkClaims(msgspec.Struct, omit_defaults=True):
    kind: str  # "open" | "click" | "unsubscribe"
    message_id: str
    workspace_id: str
    campaign: str
    profile_id: str
    expires: int  # unix seconds
    url: str | None = None  # click destination
    recipient_hash: str | None = None  # hex sha256 of the address (unsubscribe)


def _b64(data: bytes) -> str:
    return base64.urlsafe_b64encode(data).rstrip(b"=").decode()


def _unb64(text: str) -> bytes:
    return base64.urlsafe_b64decode(text + "=" * (-len(text) % 4))


def sign(claims: LinkClaims, secret: bytes) -> str:
    payload = msgspec.json.encode(claims)
    mac = hmac.new(secret, payload, hashlib.sha256).digest()
    return f"{_b64(payload)}.{_b64(mac)}"


def verify(token: str, secret: bytes, *, now: float) -> LinkClaims:
    try:
        payload_part, mac_part = token.split(".", 1)
        payload, mac = _unb64(payload_part), _unb64(mac_part)
    except (ValueError, TypeError) as exc:
        raise InvalidToken("malformed token") from exc
    if not hmac.compare_digest(mac, hmac.new(secret, payload, hashlib.sha256).digest()):
        raise InvalidToken("bad signature")
    try:
        claims = msgspec.json.decode(payload, type=LinkClaims)
    except msgspec.DecodeError as exc:
        raise InvalidToken("bad payload") from exc
    if claims.expires < now:
        raise InvalidToken("expired")
    return claims


def claims_dict(claims: LinkClaims) -> dict[str, Any]:
    return msgspec.structs.asdict(claims)
