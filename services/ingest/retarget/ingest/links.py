"""Tracking links (open pixel, click, unsubscribe): the pure rules behind /t/*.

A link is only as good as its token: signed by the composer with the link secret, of the
kind the route expects, not expired. Anything else is "not found", whatever the reason,
so a prober learns nothing. What a valid link produces is a Segment-style track event
("Email Opened", "Email Link Clicked", "Unsubscribed") on the events topic, keyed by the
recipient's profile, so the segmenter sees feedback like any other event.
"""

from __future__ import annotations

import uuid
from datetime import datetime
from typing import Any

from retarget.common.link_domains import Refusal
from retarget.common.schemas import TrackedEvent
from retarget.common.tokens import InvalidToken, LinkClaims, LinkKind, is_web_url, verify
from retarget.ingest.open_signals import FetchSignal, classify_fetch

# The smallest transparent GIF (1x1): 43 bytes.
PIXEL_GIF = (
    b"GIF89a\x01\x00\x01\x00\x80\x00\x00\x00\x00\x00\xff\xff\xff!\xf9\x04\x01\x00\x00\x00\x00"
    b",\x00\x00\x00\x00\x01\x00\x01\x00\x00\x02\x02D\x01\x00;"
)
MAX_TOKEN_CHARS = 4096  # a token carries a click URL; longer is not one of ours
MAX_QUERY_CHARS = 2048  # our links have no query; a long one is noise or a probe


class NotOurLink(Exception):
    """The token is malformed, forged, altered, expired or of another kind (answer: 404)."""


class LinkRefused(Exception):
    """A genuine click token whose destination is not on the workspace's link domains."""

    def __init__(self, reason: Refusal) -> None:
        super().__init__(reason)
        self.reason = reason


def claims_for(
    token: str, kind: LinkKind, secret: bytes, *, now: float, unsubscribe_ttl_s: float | None = None
) -> LinkClaims:
    if len(token) > MAX_TOKEN_CHARS:
        raise NotOurLink("token too long")
    try:
        claims = verify(token, secret, now=now, kind=kind, unsubscribe_ttl_s=unsubscribe_ttl_s)
    except InvalidToken as exc:
        raise NotOurLink(str(exc)) from None
    if kind == "click" and not (claims.url and is_web_url(claims.url)):  # verify checks it too
        raise NotOurLink("click token without an http(s) destination")
    if kind == "unsubscribe" and not _is_sha256_hex(claims.recipient_hash):
        raise NotOurLink("unsubscribe token without a recipient hash")
    return claims


def fetch_signal(claims: LinkClaims, user_agent: str | None, *, now: float) -> FetchSignal:
    """Who fetched the link (open_signals.py), timed from the token's issue when it has one."""
    since = None if claims.issued is None else now - claims.issued
    return classify_fetch(user_agent, seconds_since_issue=since)


LINK_ORIGIN = "link"  # TrackedEvent.origin: produced by our links, not posted by a client


def feedback_event(
    claims: LinkClaims,
    name: str,
    *,
    received_at: datetime,
    extra: dict[str, Any] | None = None,
    message_id: str | None = None,
) -> TrackedEvent:
    """The track event a link produces; the visitor is the token's profile."""
    properties: dict[str, Any] = {"message_id": claims.message_id, "campaign": claims.campaign}
    if claims.url:
        properties["url"] = claims.url
    return TrackedEvent(
        workspace_id=claims.workspace_id,
        type="track",
        message_id=message_id or str(uuid.uuid4()),
        timestamp=received_at,
        received_at=received_at,
        anonymous_id=claims.profile_id,
        event=name,
        properties=properties | (extra or {}),
        context={"library": {"name": "retarget-links"}},
        origin=LINK_ORIGIN,
    )


def _is_sha256_hex(value: str | None) -> bool:
    return value is not None and len(value) == 64 and all(c in "0123456789abcdef" for c in value.lower())
