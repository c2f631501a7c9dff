"""Which human opens and clicks are an email's first: the unique counters count only those.

PostgreSQL decides (table engagement_firsts, migration 011): the row's primary key is
(message id, kind), so the first INSERT wins across every ingest process and replica and
a replayed or repeated open finds its row. Why not the segmenter's per-profile state: the
counters live in ingest, next to the totals, and a profile forgets old message ids.

Bounded: once the open and click links have expired no fetch can hit a row again, so each
insert also deletes up to two rows older than `keep_days` (oldest first, by an index); the
table never holds more than the rows of the last `keep_days` and a shrinking remainder.
"""

from __future__ import annotations

from typing import Literal, Protocol

from retarget.ingest.pool import LazyPool

Kind = Literal["opened", "clicked"]

_FIRST = """WITH expired AS (
    DELETE FROM engagement_firsts WHERE ctid = ANY(ARRAY(
        SELECT ctid FROM engagement_firsts WHERE first_at < now() - make_interval(days => $3)
        ORDER BY first_at LIMIT 2 FOR UPDATE SKIP LOCKED))
)
INSERT INTO engagement_firsts (message_id, kind) VALUES ($1, $2)
ON CONFLICT (message_id, kind) DO NOTHING"""


class EngagementFirsts(Protocol):
    async def first(self, message_id: str, kind: Kind) -> bool:
        """Record it; True only the first time for this email and kind."""
        ...


class PgEngagementFirsts:
    def __init__(self, pool: LazyPool, *, keep_days: int) -> None:
        self._pool = pool
        self._keep_days = keep_days

    async def first(self, message_id: str, kind: Kind) -> bool:
        status = await self._pool.run(
            "record the first engagement",
            lambda p: p.execute(_FIRST, message_id, kind, self._keep_days),
        )
        return bool(status == "INSERT 0 1")
