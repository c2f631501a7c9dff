"""Tracking links for one message: the open pixel, the unsubscribe link, and every other
link rewritten to ingest's click endpoint with a signed token carrying its destination.

Rewriting happens on the rendered output, not in the templates, so a link a template author
writes by hand is tracked too. Links already pointing at ingest (unsubscribe, pixel),
mailto:, tel: and #anchors stay as they are. Only links to the workspace's own domains
(https, see retarget.common.link_domains) are signed: in the HTML any other link (another
site, javascript:, data:, http:) becomes "#", so it can't reach the reader through our
redirect; in the text body such a URL stays as written, untracked. The same destination
gets the same token within a message.
"""

from __future__ import annotations

import html
import re
from dataclasses import dataclass, field
from urllib.parse import urljoin

from retarget.common.link_domains import link_refusal
from retarget.common.tokens import LinkClaims, LinkKind, link_url, sign
from retarget.composer.metrics import LINKS_DROPPED

_HREF = re.compile(r"""(<a\b[^>]*?\bhref\s*=\s*)(["'])(.*?)\2""", re.IGNORECASE | re.DOTALL)
_TEXT_URL = re.compile(r"""https?://[^\s<>"'\]\)]+""")
_KEEP_SCHEMES = ("mailto:", "tel:", "#")


@dataclass(frozen=True)
class LinkGuard:
    """Lets through only URLs a workspace's emails may link to (`allowed`: its link domains),
    counting each one it drops by the reason."""

    allowed: tuple[str, ...]

    def keep(self, url: str | None) -> str | None:
        if not url:
            return None
        reason = link_refusal(url, self.allowed)
        if reason is not None:
            LINKS_DROPPED.labels(reason).inc()
            return None
        return url


@dataclass
class MessageLinks:
    """Signs the links of one message. `site_url` resolves relative links."""

    secret: bytes
    public_url: str
    site_url: str
    message_id: str
    workspace_id: str
    campaign: str
    profile_id: str
    expires: int  # opens and clicks
    recipient_hash: str
    guard: LinkGuard
    issued: int | None = None  # unix seconds: ingest tells pre-fetches by it
    unsubscribe_expires: int | None = None  # unsubscribes outlive the other links; else `expires`
    _clicks: dict[str, str] = field(default_factory=dict)

    def _is_ours(self, url: str) -> bool:
        return url.startswith(self.public_url.rstrip("/") + "/t/")

    def _url(self, kind: LinkKind, **extra: str) -> str:
        expires = self.expires
        if kind == "unsubscribe" and self.unsubscribe_expires is not None:
            expires = self.unsubscribe_expires
        claims = LinkClaims(
            kind=kind,
            message_id=self.message_id,
            workspace_id=self.workspace_id,
            campaign=self.campaign,
            profile_id=self.profile_id,
            expires=expires,
            issued=self.issued,
            **extra,  # type: ignore[arg-type]
        )
        return link_url(self.public_url, kind, sign(claims, self.secret))

    def unsubscribe(self) -> str:
        return self._url("unsubscribe", recipient_hash=self.recipient_hash)

    def open_pixel(self) -> str:
        return self._url("open")

    def click(self, destination: str) -> str | None:
        """The tracked link to `destination`, or None when it isn't one of the workspace's."""
        tracked = self._clicks.get(destination)
        if tracked is None:
            url = self.guard.keep(urljoin(self.site_url, destination.strip()))
            if url is None:
                return None
            tracked = self._clicks[destination] = self._url("click", url=url)
        return tracked

    def destinations(self) -> dict[str, str]:
        """Destination → tracked link, for the links rewritten so far (the preview lists them)."""
        return dict(self._clicks)

    def rewrite_html(self, body: str) -> str:
        def replace(match: re.Match[str]) -> str:
            target = html.unescape(match.group(3)).strip()
            if self._is_ours(target) or target.lower().startswith(_KEEP_SCHEMES):
                return match.group(0)
            tracked = self.click(target)
            quote = match.group(2)
            return f"{match.group(1)}{quote}{html.escape(tracked or '#')}{quote}"

        return _HREF.sub(replace, body)

    def rewrite_text(self, body: str) -> str:
        def replace(match: re.Match[str]) -> str:
            target = match.group(0).rstrip(".,;:!?")
            if self._is_ours(target):
                return match.group(0)
            tracked = self.click(target) or target
            return tracked + match.group(0)[len(target) :]

        return _TEXT_URL.sub(replace, body)
