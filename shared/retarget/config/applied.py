"""report_applied: each service instance upserts how far it applied the change feed into
config_applied every few seconds, so the API can tell whether a change is live everywhere."""

from __future__ import annotations

import asyncio
import logging
from typing import Any, Protocol

import asyncpg

log = logging.getLogger(__name__)

_UPSERT = """INSERT INTO config_applied (service, instance, feed_offset, applied_at)
              VALUES ($1, $2, $3, now())
              ON CONFLICT (service, instance) DO UPDATE
              SET feed_offset = EXCLUDED.feed_offset, applied_at = now()"""


class AppliedOffset(Protocol):
    applied_offset: int


async def report_applied(
    dsn_or_pool: str | Any, service: str, instance: str, follower: AppliedOffset, *, interval_s: float = 5.0
) -> None:
    """Run forever (a background task; cancel it to stop). A failed write is logged and
    retried at the next tick: the report is advisory, it never stops the service."""
    pool = await _pool(dsn_or_pool) if isinstance(dsn_or_pool, str) else dsn_or_pool
    try:
        while True:
            try:
                await pool.execute(_UPSERT, service, instance, follower.applied_offset)
            except (OSError, asyncpg.PostgresError, asyncpg.InterfaceError, TimeoutError) as exc:
                log.warning("config_applied not written", extra={"error": repr(exc)})
            await asyncio.sleep(interval_s)
    finally:
        if isinstance(dsn_or_pool, str):
            await pool.close()


async def _pool(dsn: str) -> Any:
    while True:
        try:
            return await asyncpg.create_pool(dsn, min_size=1, max_size=1, timeout=10)
        except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
            log.warning("config_applied: PostgreSQL not reachable", extra={"error": repr(exc)})
            await asyncio.sleep(5)
