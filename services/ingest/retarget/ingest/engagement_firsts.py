"""Which human opens and clicks are an email's first: the unique counters count only those.

PostgreSQL decides (table engagement_firsts, migration 011): the row's primary key is
(message id, kind), so the first INSERT wins across every ingest process and replica and
a replayed or repeated open finds its row. Why not the segmenter's per-profile state: the
counters live in ingest, next to the totals, and a profile forgets old message ids.
"""

from __future__ import annotations

from typing import Literal, Protocol

from retarget.ingest.pool import LazyPool

Kind = Literal["opened", "clicked"]

_FIRST = """INSERT INTO engagement_firsts (message_id, kind) VALUES ($1, $2)
ON CONFLICT (message_id, kind) DO NOTHING"""


class EngagementFirsts(Protocol):
    async def first(self, message_id: str, kind: Kind) -> bool:
        """Record it; True only the first time for this email and kind."""
        ...


class PgEngagementFirsts:
    def __init__(self, pool: LazyPool) -> None:
        self._pool = pool

    async def first(self, message_id: str, kind: Kind) -> bool:
        status = await self._pool.run(
            "record the first engagement", lambda p: p.execute(_FIRST, message_id, kind)
        )
        return bool(status == "INSERT 0 1")
