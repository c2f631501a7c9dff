"""CORS for the event routes: which pages may send a workspace's events from a browser.

* The actual request (a POST with `Origin`): the write key names the workspace, and the
  workspace must list the origin (retarget.common.origins). Then the answer carries
  `Access-Control-Allow-Origin: <that origin>` and `Vary: Origin`; otherwise it is a 403
  `origin_not_allowed` without those headers, so the page can't read it either, and nothing
  is published. Without `Origin` (servers, the Node SDKs) nothing changes.
* The preflight (`OPTIONS`, sent before a JSON or an `Authorization` request) carries no write
  key and no body, so it can't know the workspace: it is answered 204 when *some* workspace
  allows the origin, else 403 without CORS headers. The actual request then enforces the
  key's own workspace. (analytics-next and sendBeacon send `text/plain` without headers of
  their own: no preflight at all, which is why the actual request must be checked.)

Never `*` and never `Access-Control-Allow-Credentials`: the SDKs need no cookies on the
ingest host, and an answer that names the origin can't be replayed for another page.
"""

from __future__ import annotations

from retarget.ingest.allowed_origins import CachedWorkspaceOrigins, KnownOrigins
from retarget.ingest.errors import IngestError, OriginNotAllowed

# RudderStack's v3 SDK sends AnonymousId, SentAt and its retry headers (Rsa-*) with every event
ALLOWED_HEADERS = (
    "Content-Type, Authorization, AnonymousId, SentAt, Rsa-Recovered, Rsa-Retry-Attempt, "
    "Rsa-Retry-Reason, Rsa-Since-First-Attempt, Rsa-Since-Last-Attempt"
)


class Cors:
    def __init__(self, workspaces: CachedWorkspaceOrigins, known: KnownOrigins, *, max_age_s: int) -> None:
        self._workspaces = workspaces
        self._known = known
        self._max_age = str(max_age_s)

    async def check(self, workspace_id: str, origin: str) -> None:
        """OriginNotAllowed unless the workspace lists the page's origin."""
        if not await self._workspaces.allows(workspace_id, origin):
            raise OriginNotAllowed(
                f"this workspace does not allow pages of {origin[:200]} to send its events; add the "
                "origin to the workspace (`retarget workspace set-origins`, or `allowed_origins` in "
                "its identity)"
            )

    @staticmethod
    def allow(origin: str) -> dict[str, str]:
        """The headers of an answer the page at `origin` may read."""
        return {"Access-Control-Allow-Origin": origin, "Vary": "Origin"}

    async def preflight(self, origin: str | None) -> dict[str, str] | None:
        """The headers of a 204 preflight answer, None when no workspace allows the origin."""
        if origin is None or not await self._known.allows(origin):
            return None
        return self.allow(origin) | {
            "Access-Control-Allow-Methods": "POST",
            "Access-Control-Allow-Headers": ALLOWED_HEADERS,
            "Access-Control-Max-Age": self._max_age,
        }

    async def on_error(self, origin: str | None, error: IngestError) -> dict[str, str]:
        """CORS headers for an error answer, so an SDK can read why (a 400 is not retried, a
        429 is, later). Before the key is known the workspace isn't, so the preflight's rule
        applies; a refused origin never gets them."""
        if origin is None or isinstance(error, OriginNotAllowed):
            return {}
        try:
            if not await self._known.allows(origin):
                return {}
        except IngestError:
            return {}  # PostgreSQL away: the error stands, unreadable by the page
        exposed = {"Access-Control-Expose-Headers": "Retry-After"} if "Retry-After" in error.headers() else {}
        return self.allow(origin) | exposed
