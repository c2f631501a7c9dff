"""What the management routes use, built once by ingest's bootstrap (fakes in unit tests)."""

from __future__ import annotations

from collections.abc import Awaitable, Callable, Mapping
from dataclasses import dataclass, field
from typing import Annotated, Any

from fastapi import Depends, Request

from retarget.common.clock import Clock, SystemClock
from retarget.ingest.management.store import ConfigStore

Bundled = Callable[[str], Mapping[str, Mapping[str, Any]]]
"""kind ("campaign" or "template") -> the deployment's bundled objects of that kind, by name."""

Renderer = Callable[[str, str, Mapping[str, Any], Mapping[str, Any] | None], Awaitable[dict[str, Any]]]
"""(workspace_id, template name, body, profile or None for the sample) -> {"subject", "html", "text",
"message"} (message: the complete RFC 5322 message, for the spam score)."""

SpamScoring = Callable[[str], Awaitable[dict[str, Any]]]
"""a complete message -> {"score", "threshold", "rules": [{"name", "points", "description"}]}
(SpamAssassin; a 503 naming the package when it is not installed)."""

ProfileLookup = Callable[[str, str], Awaitable[Mapping[str, Any] | None]]
"""(workspace_id, profile_id) -> the segmenter's profile, None when it has none (503 when unreachable)."""


@dataclass
class Management:
    store: ConfigStore
    bundled: Bundled
    render: Renderer
    profile: ProfileLookup
    db: Any  # a LazyPool-like `run(what, query)`: suppressions and config_applied
    max_body_bytes: int
    score_spam: SpamScoring | None = None  # None: this ingest can't score (a 503 says so)
    clock: Clock = field(default_factory=SystemClock)  # coupons: expiry and redemption time

    async def close(self) -> None:
        close = getattr(self.store, "close", None)
        if close is not None:
            await close()


async def get_management(request: Request) -> Management:
    return request.app.state.services.management  # type: ignore[no-any-return]


ManagementDep = Annotated[Management, Depends(get_management)]
