"""The relay: publishes versions committed but not published (a crash or a Kafka outage
between a writer's commit and its publish), the newest per object only. Ingest runs it at
start and every few seconds; running it in several processes at once is safe (the publish
takes the object's lock and skips what the feed already has).
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from retarget.common.kafka import ensure_topics, make_producer
from retarget.common.settings import CommonSettings
from retarget.config import store
from retarget.config.records import config_topic
from retarget.config.service import ConfigService

log = logging.getLogger(__name__)


async def relay_once(service: ConfigService, db: object, *, workspace_id: str | None = None) -> int:
    """Publish every object whose newest version is unpublished (of one workspace: tests on a
    shared database); how many were sent."""
    sent = 0
    for ws, kind, name in await store.unpublished_objects(db, topic=service.topic, workspace_id=workspace_id):
        try:
            sent += await service.publish_newest(ws, kind, name)
        except Exception as exc:  # logged; the objects after this one still go
            log.warning(
                "config relay could not publish",
                extra={"workspace_id": ws, "kind": kind, "config_name": name, "error": repr(exc)},
            )
    if sent:
        log.info("config relay published unpublished versions", extra={"count": sent})
    return sent


async def run_relay(settings: CommonSettings, *, interval_s: float = 3.0) -> None:
    """Forever (until cancelled): connect, relay every interval_s; reconnect after failures."""
    topic = config_topic(settings.topic_prefix)
    while True:
        try:
            await ensure_topics(settings, [topic])
            pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2, timeout=10)
            producer = make_producer(settings)
            try:
                await producer.start()
                service = ConfigService(pool, producer, topic)
                while True:
                    await relay_once(service, pool)
                    await asyncio.sleep(interval_s)
            finally:
                await producer.stop()
                await pool.close()
        except asyncio.CancelledError:
            raise
        except Exception as exc:  # PostgreSQL or Kafka away: try again later
            log.warning("config relay failed; retrying", extra={"error": repr(exc)})
            await asyncio.sleep(interval_s)
