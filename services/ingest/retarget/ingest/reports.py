"""Bounces and complaints received by mail (retarget.common.bounces says how they are read):
the send-log entry they name gets its recipient suppressed — `hard_bounce` for a permanent
failure, `complaint` for a spam report — and a hard-bounced entry is marked `bounced`.

A soft bounce (4.x.x) changes nothing: the relay is still trying. Nor does a permanent failure
that is not about the address (5.7.x policy, 5.2.x mailbox full, 5.3.x message too big:
retarget.common.smtp_classes, docs/deliverability.md): it is noted, nobody is suppressed. A report naming no entry
of ours is noted and dropped (there is no one to suppress).
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime
from typing import Protocol

import asyncpg

from retarget.common.reputation_store import add_counts
from retarget.ingest.pool import LazyPool


@dataclass(frozen=True)
class Recorded:
    workspace_id: str
    campaign: str
    new: bool  # False: the recipient was already suppressed


class Reports(Protocol):
    async def record(
        self, message_id: str, reason: str, source: str, status: str, domain: str = ""
    ) -> Recorded | None:
        """Suppress the entry's recipient (reason 'hard_bounce' or 'complaint'); None: no such entry."""
        ...


_ENTRY = "SELECT workspace_id, campaign, recipient_hash FROM send_log WHERE message_id = $1"
# A complaint replaces a weaker reason (manual, unsubscribed, hard_bounce): the management API
# refuses to remove a complaint, so it must not stay hidden behind a removable reason.
# RETURNING: true when inserted, false when a reason was upgraded, no row when nothing changed.
_SUPPRESS = """INSERT INTO suppressions (workspace_id, email_hash, reason, source)
VALUES ($1, $2, $3, $4) ON CONFLICT (workspace_id, email_hash) DO UPDATE
SET reason = EXCLUDED.reason, source = EXCLUDED.source
WHERE EXCLUDED.reason = 'complaint' AND suppressions.reason NOT IN ('complaint', 'erased')
RETURNING (xmax = 0) AS inserted"""
_BOUNCED = """UPDATE send_log SET state = 'bounced', last_reason = $2, updated_at = now()
WHERE message_id = $1 AND state = 'sent' RETURNING true"""


class PgReports:
    def __init__(self, pool: LazyPool, now: Callable[[], datetime] = lambda: datetime.now(UTC)) -> None:
        self._pool = pool
        self._now = now

    async def record(
        self, message_id: str, reason: str, source: str, status: str, domain: str = ""
    ) -> Recorded | None:
        async def write(pool: asyncpg.Pool) -> Recorded | None:
            async with pool.acquire() as conn, conn.transaction():
                entry = await conn.fetchrow(_ENTRY, message_id)
                if entry is None:
                    return None
                inserted = await conn.fetchval(
                    _SUPPRESS, entry["workspace_id"], entry["recipient_hash"], reason, source
                )
                counted = False
                if reason == "hard_bounce":  # once per email: only a 'sent' entry becomes 'bounced'
                    counted = await conn.fetchval(_BOUNCED, message_id, f"bounced after delivery: {status}")
                elif inserted is not None:  # once per recipient: a complaint that changed the list
                    counted = True
                if counted:  # the reputation guard's rates (migration 014, docs/deliverability.md)
                    await add_counts(
                        conn,
                        entry["workspace_id"],
                        domain,
                        self._now(),
                        hard_bounces=int(reason == "hard_bounce"),
                        complaints=int(reason == "complaint"),
                    )
                return Recorded(entry["workspace_id"], entry["campaign"], inserted is True)

        return await self._pool.run(f"record a {reason}", write)
