"""The real adapters of the management API, chosen by ingest's bootstrap: retarget.config's
ConfigService and bundled defaults, the composer's preview renderer, the segmenter's profiles.

The composer is imported on first preview (its Jinja2 environment is not worth loading in
every ingest worker that never renders).
"""

from __future__ import annotations

import asyncio
import functools
from collections.abc import Mapping
from typing import Any

from retarget.common.clock import Clock, SystemClock
from retarget.common.privacy import Person
from retarget.common.privacy_requests import ProfileFinder
from retarget.common.workspaces import WorkspaceStore
from retarget.config.defaults import bundled_campaigns, bundled_templates
from retarget.ingest.errors import Unavailable
from retarget.ingest.management.context import Management
from retarget.ingest.management.errors import ObjectNotFound
from retarget.ingest.management.preview_profile import preview_profile
from retarget.ingest.management.store import LazyConfigService
from retarget.ingest.pool import LazyPool
from retarget.ingest.settings import IngestSettings


@functools.cache  # the bundled files ship with the deployment: read once per process
def bundled(kind: str) -> Mapping[str, Mapping[str, Any]]:
    return bundled_campaigns() if kind == "campaign" else bundled_templates()


def management(
    settings: IngestSettings, pool: LazyPool, profiles: ProfileFinder, clock: Clock | None = None
) -> Management:
    async def render(
        workspace_id: str, name: str, body: Mapping[str, Any], profile: Mapping[str, Any] | None
    ) -> dict[str, Any]:
        try:
            from retarget.composer.preview import render_preview
        except ImportError:
            raise Unavailable(
                "the template preview renderer is not installed here", retry_after_s=60
            ) from None
        workspace = await pool.run("look up the workspace", lambda p: WorkspaceStore(p).get(workspace_id))
        if workspace is None:
            raise ObjectNotFound("this workspace has no sender identity to render with")
        return dict(render_preview(workspace, name, body, profile))

    scoring = asyncio.Semaphore(2)  # each SpamAssassin run is a ~100 MB Perl process for seconds

    async def score_spam(message: str) -> dict[str, Any]:
        try:
            from retarget.composer.spam_score import SpamScorerUnavailable
            from retarget.composer.spamassassin import SpamAssassin
        except ImportError:
            raise Unavailable(
                "no spam score: the composer is not installed here", retry_after_s=300
            ) from None
        async with scoring:
            try:
                (spam,) = await asyncio.to_thread(SpamAssassin().score, [message])
            except SpamScorerUnavailable as exc:
                raise Unavailable(f"no spam score: {exc}", retry_after_s=300) from None
        return spam.as_json()

    async def profile(workspace_id: str, profile_id: str) -> Mapping[str, Any] | None:
        found = await profiles.find(Person(workspace_id, user_id=profile_id))
        if found.problem and not found.profiles:
            raise Unavailable(
                f"profiles are not reachable now: {found.problem}", retry_after_s=settings.retry_after_s
            )
        return preview_profile(found.profiles[0]) if found.profiles else None

    return Management(
        store=LazyConfigService(settings, pool),
        bundled=bundled,
        render=render,
        profile=profile,
        db=pool,
        max_body_bytes=settings.max_batch_bytes,
        score_spam=score_spam,
        clock=clock or SystemClock(),
    )
