"""The use case behind /t/*: verify a tracking link, record what it means, publish it.

A click redirects only to the workspace's own link domains (link_domains.py): a genuine
token for anywhere else is refused before anything is recorded.

Opens and clicks are best effort on the Kafka side: a person clicking must get their
redirect (and a pixel its GIF) even while Kafka is away, so a failed publish is logged
and counted, not answered with an error. An unsubscribe is different: it is written to
PostgreSQL before the answer (an unsubscribe that was confirmed must hold), then
published with a messageId derived from the link, so a replay makes no second event.

A person's open or click also counts once per email in the unique counters
(engagement_firsts.py), recorded beside the publish; PostgreSQL being away leaves that
count out (logged and counted as `unique_unknown`), never the person's GIF or redirect.
"""

from __future__ import annotations

import asyncio
import logging
from dataclasses import dataclass

from retarget.common.clock import Clock
from retarget.common.faults import crash_point
from retarget.common.link_domains import link_refusal
from retarget.common.schemas import TrackedEvent, encode
from retarget.common.tokens import LinkClaims, LinkKind
from retarget.common.topics import visitor_key
from retarget.ingest import metrics
from retarget.ingest.engagement_firsts import EngagementFirsts, Kind
from retarget.ingest.errors import IngestError
from retarget.ingest.link_domains import LinkDomains
from retarget.ingest.links import LinkRefused, NotOurLink, claims_for, feedback_event, fetch_signal
from retarget.ingest.publisher import EventPublisher
from retarget.ingest.suppressions import Scope, Unsubscribes

log = logging.getLogger(__name__)


@dataclass(frozen=True)
class Unsubscribed:
    claims: LinkClaims
    new: bool


class LinkFeedback:
    def __init__(
        self,
        *,
        secret: bytes | None,
        publisher: EventPublisher,
        unsubscribes: Unsubscribes,
        link_domains: LinkDomains,
        topic: str,
        clock: Clock,
        publish_timeout_s: float,
        firsts: EngagementFirsts,
        unsubscribe_ttl_s: float | None = None,
    ) -> None:
        self._secret = secret
        self._publisher = publisher
        self._unsubscribes = unsubscribes
        self._link_domains = link_domains
        self._topic = topic
        self._clock = clock
        self._publish_timeout_s = publish_timeout_s
        self._unsubscribe_ttl_s = unsubscribe_ttl_s
        self._firsts = firsts

    def claims(self, token: str, kind: LinkKind) -> LinkClaims:
        if self._secret is None:
            raise NotOurLink("no link secret configured")
        return claims_for(
            token,
            kind,
            self._secret,
            now=self._clock.now().timestamp(),
            unsubscribe_ttl_s=self._unsubscribe_ttl_s,
        )

    async def opened(self, token: str, user_agent: str | None) -> None:
        claims = self.claims(token, "open")
        signal = fetch_signal(claims, user_agent, now=self._clock.now().timestamp())
        metrics.count_engagement(
            claims.workspace_id, claims.campaign, "opened_machine" if signal.machine else "opened"
        )
        extra = {"machine_open": signal.machine, "open_source": signal.source}
        event = feedback_event(claims, "Email Opened", received_at=self._clock.now(), extra=extra)
        await asyncio.gather(
            self._publish_best_effort("open", event),
            self._count_if_first(claims, "opened", human=not signal.machine),
        )

    async def clicked(self, token: str, user_agent: str | None) -> str:
        """The destination to redirect to (it travels inside the signed token). LinkRefused
        when it is not on the workspace's link domains; Unavailable when they can't be read."""
        claims = self.claims(token, "click")
        assert claims.url is not None  # claims_for checked it
        allowed = await self._link_domains.of(claims.workspace_id)
        if allowed is None:
            raise NotOurLink("unknown workspace")
        if (refusal := link_refusal(claims.url, allowed)) is not None:
            raise LinkRefused(refusal)
        signal = fetch_signal(claims, user_agent, now=self._clock.now().timestamp())
        metrics.count_engagement(
            claims.workspace_id, claims.campaign, "clicked_machine" if signal.machine else "clicked"
        )
        extra = {"machine_click": True, "click_source": signal.source} if signal.machine else {}
        event = feedback_event(claims, "Email Link Clicked", received_at=self._clock.now(), extra=extra)
        await asyncio.gather(
            self._publish_best_effort("click", event),
            self._count_if_first(claims, "clicked", human=not signal.machine),
        )
        return claims.url

    async def unsubscribe(self, token: str, *, scope: Scope, source: str) -> Unsubscribed:
        claims = self.claims(token, "unsubscribe")
        if not await self._unsubscribes.workspace_exists(claims.workspace_id):
            raise NotOurLink("unknown workspace")
        assert claims.recipient_hash is not None  # claims_for checked it
        new = await self._unsubscribes.unsubscribe(
            claims.workspace_id,
            bytes.fromhex(claims.recipient_hash),
            scope=scope,
            campaign=claims.campaign,
            source=source,
        )
        crash_point("ingest.after_unsubscribe_write")
        if new:
            metrics.count_engagement(claims.workspace_id, claims.campaign, "unsubscribed")
        # Published on a replay too: the messageId is the same, so the segmenter keeps one,
        # and an event lost while Kafka was away gets another chance.
        event = feedback_event(
            claims,
            "Unsubscribed",
            received_at=self._clock.now(),
            extra={"scope": scope, "source": source},
            message_id=f"unsub-{claims.message_id}-{scope}",
        )
        await self._publish_best_effort("unsubscribe", event)
        return Unsubscribed(claims, new)

    async def _count_if_first(self, claims: LinkClaims, kind: Kind, *, human: bool) -> None:
        if not human:  # machine fetches are totals only: they say nothing of a person
            return
        try:
            first = await self._firsts.first(claims.message_id, kind)
        except IngestError as exc:
            log.warning(
                "first engagement not recorded",
                extra={"kind": kind, "workspace_id": claims.workspace_id, "error": repr(exc)},
            )
            metrics.count_tracking(kind, "unique_unknown")
            return
        if first:
            metrics.count_unique_engagement(claims.workspace_id, claims.campaign, kind)

    async def _publish_best_effort(self, kind: str, event: TrackedEvent) -> None:
        key = visitor_key(event.workspace_id, None, event.anonymous_id)
        try:
            async with asyncio.timeout(self._publish_timeout_s):
                await self._publisher.publish(self._topic, [(key, encode(event))])
        except (IngestError, TimeoutError) as exc:
            log.warning(
                "tracking event not published",
                extra={"kind": kind, "workspace_id": event.workspace_id, "error": repr(exc)},
            )
            metrics.count_tracking(kind, "not_published")
            return
        metrics.count_tracking(kind, "published")
