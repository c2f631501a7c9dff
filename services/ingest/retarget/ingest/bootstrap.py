"""Builds ingest's object graph: the one place that chooses real adapters or fakes.

Nothing connects here; `IngestServices.open()` (called by the app's lifespan) does.
Tests call the same function and pass fakes for the side effects.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import Protocol

from retarget.common.clock import Clock, SystemClock
from retarget.common.privacy import privacy_topic
from retarget.common.privacy_requests import (
    PersonRecords,
    PgPersonRecords,
    PrivacyRequests,
    PrivacySettings,
    ProfileFinder,
    SegmenterProfiles,
    on_pool_connection,
)
from retarget.common.topics import Topics
from retarget.config.relay import run_relay
from retarget.ingest.allowed_origins import CachedWorkspaceOrigins, KnownOrigins, OriginLookup, PgOriginLookup
from retarget.ingest.auth import CachedKeyResolver, WriteKeyLookup
from retarget.ingest.cors import Cors
from retarget.ingest.engagement_firsts import EngagementFirsts, PgEngagementFirsts
from retarget.ingest.feedback import LinkFeedback
from retarget.ingest.intake import Intake
from retarget.ingest.keystore import PgSecretKeyLookup, PgWriteKeyLookup
from retarget.ingest.link_domains import CachedLinkDomains, LinkDomains, PgLinkDomains
from retarget.ingest.management.context import Management
from retarget.ingest.management.wiring import management as real_management
from retarget.ingest.pool import LazyPool
from retarget.ingest.publisher import EventPublisher, KafkaEventPublisher
from retarget.ingest.ratelimit import RateLimiter
from retarget.ingest.secret_auth import SecretKeyAuthorizer, SecretKeyLookup, build_authorizer
from retarget.ingest.settings import IngestSettings
from retarget.ingest.suppressions import PgUnsubscribes, Unsubscribes

log = logging.getLogger(__name__)


class KeyLookupResource(WriteKeyLookup, Protocol):
    async def problem(self) -> str | None: ...

    async def close(self) -> None: ...


@dataclass
class IngestServices:
    settings: IngestSettings
    topics: Topics
    publisher: EventPublisher
    key_lookup: KeyLookupResource
    intake: Intake
    links: LinkFeedback
    pool: LazyPool
    keys: CachedKeyResolver  # write keys, for the /v1 event routes (through intake)
    cors: Cors  # which web pages may send events (the event routes, the SDK settings)
    privacy: PrivacyRequests
    secret_keys: SecretKeyAuthorizer  # the privacy endpoints: secret keys with scopes, never write keys
    management: Management  # the /v1/workspaces/{id}/… routes (admin secret keys)
    # publishes config versions committed but not published (retarget.config.relay); real adapters only
    run_config_relay: bool = False
    _config_relay: asyncio.Task[None] | None = field(default=None, init=False, repr=False)

    async def open(self) -> None:
        if self.settings.link_secret is None:
            log.warning("RETARGET_LINK_SECRET is not set: tracking links (/t/*) answer 404")
        await self.publisher.start()
        if self.run_config_relay:
            self._config_relay = asyncio.create_task(run_relay(self.settings), name="config-relay")

    async def close(self) -> None:
        if self._config_relay is not None:
            self._config_relay.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._config_relay
        try:
            await self.publisher.close()  # flushes what is buffered first
        finally:
            await self.management.close()
            await self.key_lookup.close()
            await self.pool.close()

    async def problems(self) -> dict[str, str]:
        """What keeps the service from accepting events, by dependency (empty when ready)."""
        kafka, postgres = await asyncio.gather(self.publisher.problem(), self.key_lookup.problem())
        return {name: problem for name, problem in (("kafka", kafka), ("postgres", postgres)) if problem}


def bootstrap(
    settings: IngestSettings | None = None,
    *,
    publisher: EventPublisher | None = None,
    key_lookup: KeyLookupResource | None = None,
    secret_key_lookup: SecretKeyLookup | None = None,
    unsubscribes: Unsubscribes | None = None,
    link_domains: LinkDomains | None = None,
    engagement_firsts: EngagementFirsts | None = None,
    origins: OriginLookup | None = None,
    person_records: PersonRecords | None = None,
    profile_finder: ProfileFinder | None = None,
    management: Management | None = None,
    clock: Clock | None = None,
    monotonic: Callable[[], float] = time.monotonic,
) -> IngestServices:
    settings = settings or IngestSettings()
    topics = Topics(settings.topic_prefix)
    privacy_topic_name = privacy_topic(settings.topic_prefix)
    real_publisher = publisher is None
    publisher = publisher or KafkaEventPublisher(settings, [topics.events, privacy_topic_name])
    pool = LazyPool(settings)  # connects on first use
    key_lookup = key_lookup or PgWriteKeyLookup(pool)
    clock = clock or SystemClock()
    keys = CachedKeyResolver(
        key_lookup,
        ttl_s=settings.key_cache_ttl_s,
        negative_ttl_s=settings.key_cache_negative_ttl_s,
        max_entries=settings.key_cache_max_entries,
        cold_lookups_per_s=settings.key_cold_lookups_per_s,
        cold_lookup_burst=settings.key_cold_lookup_burst,
        monotonic=monotonic,
    )
    secret_keys = build_authorizer(
        secret_key_lookup or PgSecretKeyLookup(pool),
        ttl_s=settings.key_cache_ttl_s,
        negative_ttl_s=settings.key_cache_negative_ttl_s,
        max_entries=settings.key_cache_max_entries,
        cold_lookups_per_s=settings.key_cold_lookups_per_s,
        cold_lookup_burst=settings.key_cold_lookup_burst,
        requests_per_s=settings.rate_limit_secret_key_requests_per_s,
        burst=settings.rate_limit_secret_key_burst,
        monotonic=monotonic,
    )
    origins = origins or PgOriginLookup(pool)
    cors = Cors(
        CachedWorkspaceOrigins(
            origins,
            ttl_s=settings.origins_cache_s,
            max_entries=settings.origins_cache_max,
            monotonic=monotonic,
        ),
        KnownOrigins(
            origins,
            ttl_s=settings.origins_cache_s,
            max_origins=settings.known_origins_max,
            monotonic=monotonic,
        ),
        max_age_s=settings.cors_max_age_s,
    )
    intake = Intake(
        keys=keys,
        limiter=RateLimiter(settings.rate_limit_events_per_s, settings.rate_limit_burst, monotonic=monotonic),
        publisher=publisher,
        topic=topics.events,
        clock=clock,
        max_event_bytes=settings.max_event_bytes,
        max_batch_events=settings.max_batch_events,
        max_batch_bytes=settings.max_batch_bytes,
        cors=cors,
    )
    secret = settings.link_secret.get_secret_value().encode() if settings.link_secret else None
    links = LinkFeedback(
        secret=secret,
        publisher=publisher,
        unsubscribes=unsubscribes or PgUnsubscribes(pool),
        link_domains=CachedLinkDomains(
            link_domains or PgLinkDomains(pool),
            ttl_s=settings.link_domains_cache_s,
            max_entries=settings.link_domains_cache_max,
            monotonic=monotonic,
        ),
        topic=topics.events,
        clock=clock,
        publish_timeout_s=settings.link_publish_timeout_s,
        unsubscribe_ttl_s=settings.unsubscribe_ttl_days * 86400.0,
        firsts=engagement_firsts or PgEngagementFirsts(pool, keep_days=settings.engagement_firsts_keep_days),
    )
    profile_finder = profile_finder or SegmenterProfiles(PrivacySettings())
    privacy = PrivacyRequests(
        records=person_records
        or PgPersonRecords(lambda what, step: pool.run(what, lambda p: on_pool_connection(p, step))),
        profiles=profile_finder,
        publish=lambda records: publisher.publish(privacy_topic_name, records),
        clock=clock,
    )
    management = management or real_management(settings, pool, profile_finder, clock)
    services = IngestServices(
        settings,
        topics,
        publisher,
        key_lookup,
        intake,
        links,
        pool,
        keys,
        cors,
        privacy,
        secret_keys,
        management,
    )
    services.run_config_relay = real_publisher  # with fakes (unit tests) nothing reaches a real server
    return services
