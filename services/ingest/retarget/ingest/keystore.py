"""Write-key lookups in PostgreSQL, through a pool opened on first use.

PostgreSQL being down at startup does not stop ingest: the pool is created when first
needed and again after a failure, and a lookup that can't reach the database is a 503
(with Retry-After), never a 401 — a valid key must not look revoked because of an outage.
"""

from __future__ import annotations

import asyncio
import logging

import asyncpg

from retarget.common.db import create_pool
from retarget.common.write_keys import WriteKeyStore
from retarget.ingest.errors import Unavailable
from retarget.ingest.settings import IngestSettings

log = logging.getLogger(__name__)


class PgWriteKeyLookup:
    def __init__(self, settings: IngestSettings) -> None:
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def workspace_for(self, key_hash: bytes) -> str | None:
        try:
            pool = await self._get_pool()
            lookup = WriteKeyStore(pool).workspace_for(key_hash)
            return await asyncio.wait_for(lookup, self._settings.publish_timeout_s)
        except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
            log.warning("write-key lookup failed", extra={"error": repr(exc)})
            raise Unavailable(
                "cannot check the write key now; nothing was accepted",
                retry_after_s=self._settings.retry_after_s,
            ) from None

    async def problem(self) -> str | None:
        try:
            pool = await self._get_pool()
            await asyncio.wait_for(pool.fetchval("SELECT 1"), self._settings.readiness_timeout_s)
        except Exception as exc:
            return f"PostgreSQL not reachable: {exc!r}"
        return None

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    async def _get_pool(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                self._pool = await asyncio.wait_for(
                    create_pool(self._settings), self._settings.publish_timeout_s
                )
            return self._pool
