"""ConfigService: the one way to change a workspace's configuration (the API and the CLI).

    validate ─▶ one transaction, the object's advisory lock held:
                insert the version (+ identity/policy into the legacy tables) ─▶ commit
            ─▶ publish the object's newest version (acks=all), lock held again ─▶ published_at

A crash or a Kafka outage between the commit and the publish leaves the version committed
and unpublished; ingest's relay (relay.py) publishes it. Publishing always sends the
object's newest version under its lock, so concurrent writers of one object can't leave an
older version as the feed's last record for it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from aiokafka import AIOKafkaProducer

from retarget.common.faults import crash_point
from retarget.common.write_keys import UnknownWorkspace
from retarget.config import store
from retarget.config.defaults import bundled_campaigns, bundled_templates
from retarget.config.legacy import write_legacy_tables
from retarget.config.records import KINDS, ConfigChange, Kind, encode
from retarget.config.validation import ConfigInvalid, validate

log = logging.getLogger(__name__)


class ConfigNotFound(LookupError):
    """Deleting an object the workspace neither has nor inherits."""


class ConfigService:
    def __init__(
        self, pool: Any, producer: AIOKafkaProducer, topic: str, *, publish_timeout_s: float = 30.0
    ) -> None:
        self._pool = pool
        self._producer = producer
        self._topic = topic
        self._publish_timeout_s = publish_timeout_s

    @property
    def topic(self) -> str:
        """The change feed it publishes to."""
        return self._topic

    @property
    def pool(self) -> Any:
        """The asyncpg pool it writes through (callers read the legacy tables with it)."""
        return self._pool

    async def apply(
        self,
        workspace_id: str,
        kind: Kind,
        name: str,
        body: Mapping[str, Any],
        *,
        author: str,
        dry_run: bool = False,
        create_only: bool = False,
    ) -> ConfigChange:
        """Store `body` as the object's new version and publish it; ConfigInvalid (nothing
        stored) or UnknownWorkspace. A body equal to the newest version's returns that version
        (nothing new stored). dry_run: only validate (version 0 is returned). create_only: the
        object must never have existed (checked under its lock: a DKIM selector is never reused,
        and two concurrent generations can't both take one)."""
        normal = validate(kind, name, body)
        if not await store.workspace_exists(self._pool, workspace_id):
            raise UnknownWorkspace(workspace_id)
        if dry_run:
            return ConfigChange(workspace_id, kind, name, 0, False, normal, author, datetime.now(UTC))
        return await self._write(workspace_id, kind, name, normal, author=author, create_only=create_only)

    async def delete(self, workspace_id: str, kind: Kind, name: str, *, author: str) -> ConfigChange:
        """Store a deleted marker (it also hides a bundled default of that name). Deleting what
        is already deleted changes nothing; what does not exist is ConfigNotFound."""
        if kind not in KINDS:
            raise ConfigInvalid(f"{kind} {name}: unknown kind (one of {', '.join(KINDS)})")
        if kind == "identity":
            raise ConfigInvalid("identity: can't be deleted (every email needs a sender); apply a new one")
        if not await store.workspace_exists(self._pool, workspace_id):
            raise UnknownWorkspace(workspace_id)
        async with self._pool.acquire() as conn:
            found = await store.newest(conn, workspace_id, kind, name)
        if found is not None and found[0].deleted:
            return found[0]
        if found is None and not _is_bundled(kind, name):
            raise ConfigNotFound(f"{kind} {name}: not found in workspace {workspace_id}")
        return await self._write(workspace_id, kind, name, None, author=author)

    async def current(self, workspace_id: str, kind: Kind | None = None) -> list[ConfigChange]:
        """The newest version of each object the workspace wrote (deleted markers included)."""
        return await store.current(self._pool, workspace_id, kind)

    async def history(self, workspace_id: str, kind: Kind, name: str) -> list[ConfigChange]:
        """Every version of the object, newest first."""
        return await store.history(self._pool, workspace_id, kind, name)

    async def publish_newest(self, workspace_id: str, kind: str, name: str) -> bool:
        """Publish the object's newest version unless the feed has it; True when sent now."""
        async with self._pool.acquire() as conn, conn.transaction():
            await store.lock_object(conn, workspace_id, kind, name)
            found = await store.newest(conn, workspace_id, kind, name)
            if found is None or found[1]:
                return False
            change = found[0]
            key, value = encode(change)
            metadata = await asyncio.wait_for(
                self._producer.send_and_wait(self._topic, value, key=key), self._publish_timeout_s
            )
            await store.mark_published(conn, change.version, metadata.offset)
            return True

    async def _write(
        self,
        workspace_id: str,
        kind: Kind,
        name: str,
        body: dict[str, Any] | None,
        *,
        author: str,
        create_only: bool = False,
    ) -> ConfigChange:
        async with self._pool.acquire() as conn, conn.transaction():
            await store.lock_object(conn, workspace_id, kind, name)
            found = await store.newest(conn, workspace_id, kind, name)
            if create_only and found is not None:
                raise ConfigInvalid(
                    f"{kind} {name}: field name: already used in this workspace; choose another"
                )
            if found is not None and not found[0].deleted and found[0].body == body:
                change = found[0]  # unchanged: applying the same file twice makes no new version
            else:
                change = await store.insert_version(
                    conn, workspace_id, kind, name, body, author=author, topic=self._topic
                )
            await write_legacy_tables(conn, change)  # again when unchanged: heals an edit made beside
        crash_point("config.after_commit")
        try:
            await self.publish_newest(workspace_id, kind, name)
        except Exception as exc:  # Kafka away: the version is stored, the relay publishes it
            log.warning(
                "config version stored, not yet published; the relay will publish it",
                extra={
                    "workspace_id": workspace_id,
                    "kind": kind,
                    "version": change.version,
                    "error": repr(exc),
                },
            )
        return change


def _is_bundled(kind: str, name: str) -> bool:
    if kind == "campaign":
        return name in bundled_campaigns()
    if kind == "template":
        return name in bundled_templates()
    return False
