"""Build the composer from settings: the one place that creates real adapters."""

from __future__ import annotations

import asyncio
import contextlib
import os
import socket
from dataclasses import dataclass, field
from datetime import timedelta
from pathlib import Path

import asyncpg
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer

from retarget.common.clock import Clock, SystemClock
from retarget.common.db import create_pool
from retarget.common.kafka import make_consumer, make_producer
from retarget.common.stage import Stage
from retarget.common.topics import Topics
from retarget.common.workspaces import WorkspaceStore
from retarget.composer.compose import Composer
from retarget.composer.coupons import CouponIssuer
from retarget.composer.handler import TriggerHandler
from retarget.composer.render import CampaignTemplates
from retarget.composer.settings import ComposerSettings
from retarget.composer.workspaces import CachedWorkspaces
from retarget.config.applied import report_applied
from retarget.config.follower import ConfigFollower
from retarget.config.records import Kind
from retarget.coupons.store import CouponStore

# An outbound record is ~9 KB (a whole email): in aiokafka's default 16 KB batch it sat alone,
# so every record was compressed, framed and drained on its own, and each send waited for the
# previous record of its partition to be drained. ~60 records a batch cut that per-email cost.
# Below the broker's 1 MB message.max.bytes, which a (compressed) batch must fit.
OUTBOUND_BATCH_BYTES = 512 * 1024

# templates are rendered from the feed; identity and policy changes drop the workspace cache
FOLLOWED_KINDS: tuple[Kind, ...] = ("template", "identity", "policy")


@dataclass
class ComposerService:
    stage: Stage
    handler: TriggerHandler
    pool: asyncpg.Pool
    consumer: AIOKafkaConsumer
    producer: AIOKafkaProducer
    follower: ConfigFollower
    _reporting: asyncio.Task[None] | None = field(default=None, init=False)

    async def start(self) -> None:
        await self.follower.start()  # every workspace's templates known before the first trigger
        instance = f"{socket.gethostname()}-{os.getpid()}"
        self._reporting = asyncio.create_task(report_applied(self.pool, "composer", instance, self.follower))
        await self.producer.start()
        await self.consumer.start()

    async def problems(self) -> dict[str, str]:
        """What keeps the service from being ready (/readyz); empty when ready."""
        problems = {}
        if not self.follower.ready:
            problems["config"] = "the config feed is not read yet"
        if not self.consumer.assignment():
            problems["kafka"] = "no partitions assigned yet"
        try:
            await self.pool.fetchval("SELECT 1")
        except Exception as exc:  # any failure means not ready; the reason is reported
            problems["postgres"] = repr(exc)
        return problems

    async def close(self) -> None:
        await self.consumer.stop()  # leaves the group, so a peer takes the partitions at once
        await self.producer.stop()  # flushes anything still buffered
        if self._reporting is not None:
            self._reporting.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await self._reporting
        await self.follower.stop()
        await self.pool.close()


def make_composer(
    settings: ComposerSettings, clock: Clock | None = None, follower: ConfigFollower | None = None
) -> Composer:
    folder = Path(settings.templates_dir) if settings.templates_dir else None
    return Composer(
        CampaignTemplates.from_folder(
            folder,
            follower,
            cache_size=settings.template_cache_size,
            cache_chars=settings.template_cache_chars,
        ),
        clock or SystemClock(),
        link_secret=settings.link_secret.get_secret_value().encode(),
        public_url=settings.public_url,
        link_ttl=timedelta(days=settings.link_ttl_days),
        unsubscribe_ttl=timedelta(days=settings.unsubscribe_ttl_days),
    )


def make_outbound_producer(settings: ComposerSettings) -> AIOKafkaProducer:
    return make_producer(settings, max_batch_size=OUTBOUND_BATCH_BYTES)


async def bootstrap(settings: ComposerSettings, *, clock: Clock | None = None) -> ComposerService:
    topics = Topics(settings.topic_prefix)
    pool = await create_pool(settings)
    follower = ConfigFollower(settings.kafka_bootstrap, topics.config, kinds=FOLLOWED_KINDS)
    workspaces = CachedWorkspaces(WorkspaceStore(pool), settings.workspace_cache_s)
    follower.subscribe(workspaces.on_config_change)
    coupons = CouponIssuer(CouponStore(pool))
    handler = TriggerHandler(make_composer(settings, clock, follower), workspaces, topics, coupons)
    consumer = make_consumer(settings, topics.triggers, group_id=f"{settings.topic_prefix}-composer")
    producer = make_outbound_producer(settings)
    stage = Stage("composer", consumer, producer, handler.handle, dead_letter_topic=topics.dead_letter)
    return ComposerService(stage, handler, pool, consumer, producer, follower)
