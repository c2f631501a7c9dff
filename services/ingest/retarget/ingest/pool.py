"""One PostgreSQL pool per process, opened on first use and again after a failure.

PostgreSQL being down at startup does not stop ingest: whoever needs the database gets
Unavailable (a 503 with Retry-After), never a wrong answer, and the next call tries again.
Write-key lookups and unsubscribes share it.
"""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Awaitable, Callable
from typing import TypeVar

import asyncpg

from retarget.common.db import create_pool
from retarget.ingest.errors import Unavailable
from retarget.ingest.settings import IngestSettings

log = logging.getLogger(__name__)

T = TypeVar("T")
DB_ERRORS = (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError)


class LazyPool:
    def __init__(self, settings: IngestSettings) -> None:
        self._settings = settings
        self._pool: asyncpg.Pool | None = None
        self._lock = asyncio.Lock()

    async def run(self, what: str, query: Callable[[asyncpg.Pool], Awaitable[T]]) -> T:
        """`query(pool)` within publish_timeout_s, or Unavailable saying `what` could not be done."""
        try:
            pool = await self.get()
            return await asyncio.wait_for(query(pool), self._settings.publish_timeout_s)
        except DB_ERRORS as exc:
            log.warning("database call failed", extra={"what": what, "error": repr(exc)})
            raise Unavailable(
                f"cannot {what} now; nothing was changed", retry_after_s=self._settings.retry_after_s
            ) from None

    async def problem(self) -> str | None:
        try:
            pool = await self.get()
            await asyncio.wait_for(pool.fetchval("SELECT 1"), self._settings.readiness_timeout_s)
        except Exception as exc:
            return f"PostgreSQL not reachable: {exc!r}"
        return None

    async def get(self) -> asyncpg.Pool:
        if self._pool is not None:
            return self._pool
        async with self._lock:
            if self._pool is None:
                self._pool = await asyncio.wait_for(
                    create_pool(self._settings), self._settings.publish_timeout_s
                )
            return self._pool

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()
