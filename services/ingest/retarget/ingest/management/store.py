"""The configuration store as the routes see it: retarget.config's ConfigService, built on
first use (so ingest starts and serves events while PostgreSQL or Kafka is away), with
every failure to reach either turned into a 503 with Retry-After.

ConfigInvalid, ConfigNotFound and UnknownWorkspace pass through: the routes answer them.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import Any, Protocol, TypeVar

from aiokafka import AIOKafkaProducer
from aiokafka.errors import KafkaError

from retarget.common.kafka import make_producer
from retarget.config.records import ConfigChange, Kind, config_topic
from retarget.config.service import ConfigService
from retarget.ingest.errors import Unavailable
from retarget.ingest.pool import DB_ERRORS, LazyPool
from retarget.ingest.settings import IngestSettings

log = logging.getLogger(__name__)
T = TypeVar("T")


class ConfigStore(Protocol):
    async def apply(
        self,
        workspace_id: str,
        kind: Kind,
        name: str,
        body: dict[str, Any],
        *,
        author: str,
        dry_run: bool = False,
        create_only: bool = False,
    ) -> ConfigChange: ...

    async def delete(self, workspace_id: str, kind: Kind, name: str, *, author: str) -> ConfigChange: ...

    async def current(self, workspace_id: str, kind: Kind | None = None) -> list[ConfigChange]: ...

    async def history(self, workspace_id: str, kind: Kind, name: str) -> list[ConfigChange]: ...


class LazyConfigService:
    """A ConfigStore that opens the real ConfigService (PostgreSQL pool + its own producer) on
    first use and again after a failure to start."""

    def __init__(self, settings: IngestSettings, pool: LazyPool) -> None:
        self._settings = settings
        self._pool = pool
        self._producer: AIOKafkaProducer | None = None
        self._service: ConfigService | None = None
        self._lock = asyncio.Lock()

    async def apply(
        self,
        workspace_id: str,
        kind: Kind,
        name: str,
        body: dict[str, Any],
        *,
        author: str,
        dry_run: bool = False,
        create_only: bool = False,
    ) -> ConfigChange:
        return await self._call(
            "store the change",
            lambda s: s.apply(
                workspace_id, kind, name, body, author=author, dry_run=dry_run, create_only=create_only
            ),
        )

    async def delete(self, workspace_id: str, kind: Kind, name: str, *, author: str) -> ConfigChange:
        return await self._call(
            "store the deletion", lambda s: s.delete(workspace_id, kind, name, author=author)
        )

    async def current(self, workspace_id: str, kind: Kind | None = None) -> list[ConfigChange]:
        return await self._call("read the configuration", lambda s: s.current(workspace_id, kind))

    async def history(self, workspace_id: str, kind: Kind, name: str) -> list[ConfigChange]:
        return await self._call("read the history", lambda s: s.history(workspace_id, kind, name))

    async def close(self) -> None:
        producer, self._producer, self._service = self._producer, None, None
        if producer is not None:
            await producer.stop()

    async def _call(self, what: str, step: Callable[[ConfigService], Awaitable[T]]) -> T:
        try:
            service = await self._open()
            async with asyncio.timeout(self._settings.publish_timeout_s * 3):  # commit, publish, mark
                return await step(service)
        except (*DB_ERRORS, KafkaError) as exc:
            log.warning("configuration store failed", extra={"what": what, "error": repr(exc)})
            raise Unavailable(
                f"cannot {what} now (PostgreSQL or Kafka unreachable); retry",
                retry_after_s=self._settings.retry_after_s,
            ) from None

    async def _open(self) -> ConfigService:
        if self._service is not None:
            return self._service
        async with self._lock:
            if self._service is None:
                pool = await self._pool.get()
                producer = make_producer(self._settings)
                try:
                    await asyncio.wait_for(producer.start(), self._settings.kafka_connect_wait_s)
                except BaseException:
                    await producer.stop()
                    raise
                self._producer = producer
                self._service = ConfigService(
                    pool,
                    producer,
                    config_topic(self._settings.topic_prefix),
                    publish_timeout_s=self._settings.publish_timeout_s,  # else the relay publishes it
                )
            return self._service
