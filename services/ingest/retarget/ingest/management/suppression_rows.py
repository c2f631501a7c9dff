"""The workspace's rows of the `suppressions` table (migration 001), by address hash.

Addresses are never stored: a lookup hashes the asked address the way the sender does
(retarget.common.identity.email_digest). Complaints and erasure tombstones are kept
whatever an admin asks: a complaint is the recipient's own "never again" (mailbox
providers penalise mailing them), and an erasure tombstone is what stops a GDPR-erased
person from being mailed again by an old import. The refusal is in the DELETE statement
itself, so a concurrent change can't slip between a check and the delete.
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime
from typing import Any

PROTECTED_REASONS = ("complaint", "erased")

_ONE = "SELECT reason, source, created_at FROM suppressions WHERE workspace_id = $1 AND email_hash = $2"
_PAGE = """SELECT email_hash, reason, source, created_at FROM suppressions
WHERE workspace_id = $1 AND email_hash > $2 ORDER BY email_hash LIMIT $3"""
_ADD = """INSERT INTO suppressions (workspace_id, email_hash, reason, source) VALUES ($1, $2, 'manual', $3)
ON CONFLICT (workspace_id, email_hash) DO NOTHING"""
_REMOVE = """DELETE FROM suppressions WHERE workspace_id = $1 AND email_hash = $2
AND reason <> ALL($3::text[]) RETURNING reason"""


@dataclass(frozen=True)
class Suppression:
    email_hash: bytes
    reason: str
    source: str
    created_at: datetime

    def view(self) -> dict[str, Any]:
        return {
            "email_hash": self.email_hash.hex(),
            "reason": self.reason,
            "source": self.source,
            "created_at": self.created_at.isoformat(),
        }


class SuppressionRows:
    """`db` runs a query on a pool, answering 503 when PostgreSQL is away (ingest's LazyPool)."""

    def __init__(self, db: Any) -> None:
        self._db = db

    async def find(self, workspace_id: str, email_hash: bytes) -> Suppression | None:
        row = await self._db.run(
            "look up the suppression", lambda p: p.fetchrow(_ONE, workspace_id, email_hash)
        )
        return Suppression(email_hash, row["reason"], row["source"], row["created_at"]) if row else None

    async def page(self, workspace_id: str, after: bytes, limit: int) -> list[Suppression]:
        rows = await self._db.run(
            "list the suppressions", lambda p: p.fetch(_PAGE, workspace_id, after, limit)
        )
        return [Suppression(bytes(r["email_hash"]), r["reason"], r["source"], r["created_at"]) for r in rows]

    async def add_manual(self, workspace_id: str, email_hash: bytes, source: str) -> bool:
        """True when added, False when the address was already suppressed (for any reason)."""
        status = await self._db.run(
            "add the suppression", lambda p: p.execute(_ADD, workspace_id, email_hash, source)
        )
        return bool(status == "INSERT 0 1")

    async def remove_unprotected(self, workspace_id: str, email_hash: bytes) -> bool:
        """True when removed; False when there was no row or its reason is protected."""
        removed = await self._db.run(
            "remove the suppression",
            lambda p: p.fetchval(_REMOVE, workspace_id, email_hash, list(PROTECTED_REASONS)),
        )
        return removed is not None
