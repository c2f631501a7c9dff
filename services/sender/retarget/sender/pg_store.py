"""DeliveryStore on PostgreSQL (asyncpg). Every method is one statement or one short transaction.

Times come from the caller's clock, not now(), so the retry schedule follows the injected
clock in tests exactly as it follows the wall clock in production.
"""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

import asyncpg

from retarget.common.db import create_pool
from retarget.common.settings import CommonSettings
from retarget.sender.rules import UNCONFIRMED_CLAIM
from retarget.sender.store import (
    Claim,
    DueRetry,
    Finish,
    NewClaim,
    SendLogRow,
    SuppressionKey,
)

_ROW = "message_id, workspace_id, campaign, profile_id, state, attempts, last_code, last_reason, updated_at"

_SUPPRESSED = """
SELECT DISTINCT ON (k.ws, k.h) k.ws, k.h, s.reason
FROM unnest($1::text[], $2::bytea[]) AS k (ws, h)
JOIN suppressions s ON s.email_hash = k.h AND s.workspace_id IN (k.ws, '*')
ORDER BY k.ws, k.h, s.workspace_id = '*'
"""

_CLAIM = f"""
INSERT INTO send_log (message_id, workspace_id, campaign, profile_id, recipient_hash, state,
                      attempts, last_reason, claimed_at, created_at, updated_at)
VALUES ($1, $2, $3, $4, $5, $6, CASE WHEN $6 = 'claimed' THEN 1 ELSE 0 END, $7,
        CASE WHEN $6 = 'claimed' THEN $8::timestamptz END, $8, $8)
ON CONFLICT (message_id) DO NOTHING
RETURNING {_ROW}
"""

_RECLAIM = f"""
UPDATE send_log SET state = 'claimed', attempts = attempts + 1, claimed_at = $2, updated_at = $2
WHERE message_id = $1 AND state = 'deferred'
RETURNING {_ROW}
"""

_FINISH = """
UPDATE send_log
SET state = $2, last_reason = $3, last_code = $4, last_reply = $5, updated_at = $6,
    sent_at = CASE WHEN $2 = 'sent' THEN $6 ELSE sent_at END
WHERE message_id = $1 AND state = 'claimed'
"""

_SUPPRESS = """
INSERT INTO suppressions (workspace_id, email_hash, reason, source, created_at)
VALUES ($1, $2, 'hard_bounce', $3, $4)
ON CONFLICT (workspace_id, email_hash) DO NOTHING
"""

_DEFER = """
INSERT INTO send_retries (message_id, payload, first_deferred_at, not_before, leased_until)
VALUES ($1, $2, $3, $4, NULL)
ON CONFLICT (message_id) DO UPDATE SET not_before = EXCLUDED.not_before, leased_until = NULL
"""

_LEASE = """
UPDATE send_retries SET leased_until = $2
WHERE message_id IN (
    SELECT message_id FROM send_retries
    WHERE not_before <= $1 AND (leased_until IS NULL OR leased_until <= $1)
    ORDER BY not_before LIMIT $3
    FOR UPDATE SKIP LOCKED)
RETURNING message_id, payload, first_deferred_at
"""

_SWEEP = f"""
UPDATE send_log SET state = 'failed', last_reason = '{UNCONFIRMED_CLAIM}', updated_at = $2
WHERE state = 'claimed' AND claimed_at < $1
RETURNING {_ROW}
"""


def _row(record: asyncpg.Record) -> SendLogRow:
    return SendLogRow(**dict(record))


class PostgresDeliveryStore:
    def __init__(self, settings: CommonSettings, pool: asyncpg.Pool | None = None) -> None:
        self.settings = settings
        self._pool = pool

    async def start(self) -> None:
        if self._pool is None:
            self._pool = await create_pool(self.settings)

    @property
    def pool(self) -> asyncpg.Pool:
        if self._pool is None:
            raise RuntimeError("PostgresDeliveryStore.start() was not awaited")
        return self._pool

    async def close(self) -> None:
        if self._pool is not None:
            await self._pool.close()
            self._pool = None

    async def suppressions(self, keys: Sequence[SuppressionKey]) -> dict[SuppressionKey, str]:
        if not keys:
            return {}
        rows = await self.pool.fetch(_SUPPRESSED, [k[0] for k in keys], [k[1] for k in keys])
        return {(r["ws"], bytes(r["h"])): r["reason"] for r in rows}

    async def claim(self, claim: NewClaim) -> Claim:
        c = claim
        async with self.pool.acquire() as conn:
            args = (c.message_id, c.workspace_id, c.campaign, c.profile_id, c.recipient_hash, c.state)
            inserted = await conn.fetchrow(_CLAIM, *args, c.reason, c.at)
            if inserted is not None:
                return Claim(owned=True, row=_row(inserted))
            existing = await conn.fetchrow(f"SELECT {_ROW} FROM send_log WHERE message_id = $1", c.message_id)
        assert existing is not None  # rows are never deleted while a message id can be replayed
        return Claim(owned=False, row=_row(existing))

    async def reclaim_deferred(self, message_id: str, at: datetime) -> Claim | None:
        async with self.pool.acquire() as conn:
            updated = await conn.fetchrow(_RECLAIM, message_id, at)
            if updated is not None:
                return Claim(owned=True, row=_row(updated))
            existing = await conn.fetchrow(f"SELECT {_ROW} FROM send_log WHERE message_id = $1", message_id)
        return None if existing is None else Claim(owned=False, row=_row(existing))

    async def finish(self, finish: Finish) -> None:
        f = finish
        async with self.pool.acquire() as conn, conn.transaction():
            await conn.execute(_FINISH, f.message_id, f.state, f.reason, f.code, f.reply_text, f.at)
            if f.suppress:
                await conn.execute(_SUPPRESS, f.workspace_id, f.recipient_hash, f"smtp:{f.code}", f.at)
            if f.retry is not None:
                r = f.retry
                await conn.execute(_DEFER, f.message_id, r.payload, r.first_deferred_at, r.not_before)

    async def lease_due(self, now: datetime, lease_until: datetime, limit: int) -> list[DueRetry]:
        rows = await self.pool.fetch(_LEASE, now, lease_until, limit)
        return [DueRetry(r["message_id"], bytes(r["payload"]), r["first_deferred_at"]) for r in rows]

    async def drop_retry(self, message_id: str) -> None:
        await self.pool.execute("DELETE FROM send_retries WHERE message_id = $1", message_id)

    async def sweep_stale_claims(self, claimed_before: datetime, at: datetime) -> list[SendLogRow]:
        async with self.pool.acquire() as conn, conn.transaction():
            rows = [_row(r) for r in await conn.fetch(_SWEEP, claimed_before, at)]
            if rows:
                ids = [r.message_id for r in rows]
                await conn.execute("DELETE FROM send_retries WHERE message_id = ANY($1::text[])", ids)
        return rows

    async def check(self) -> str | None:
        try:
            await self.pool.fetchval("SELECT 1 FROM send_retries LIMIT 1")
        except (OSError, asyncpg.PostgresError, RuntimeError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None
