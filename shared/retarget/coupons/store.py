"""Coupons in PostgreSQL (migration 013): issue, claim from a pool, look up, redeem, upload.

`db` is an asyncpg pool or connection. The rules (rules.py) decide; this module only reads
and writes rows, each decision under the row's lock so two redemptions of one code can't
both succeed.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

import asyncpg

from retarget.coupons.rules import Coupon, Redemption, is_code, redemption

_COLUMNS = (
    "workspace_id, code, campaign, trigger_id, profile_id, mode, issued_at, expires_at, redeemed_at, order_id"
)


@dataclass(frozen=True)
class Issue:
    """Who a code is for: the trigger it is rendered into."""

    workspace_id: str
    campaign: str
    trigger_id: str
    profile_id: str
    issued_at: datetime
    expires_after: timedelta


@dataclass(frozen=True)
class Redeemed:
    coupon: Coupon | None
    outcome: Redemption


@dataclass(frozen=True)
class Uploaded:
    added: int
    duplicates: int  # already uploaded (to this pool or another of the workspace)
    invalid: list[str]  # lines that can't be codes (shown cut short)


class PoolEmpty(LookupError):
    """The pool has no free code left (or does not exist)."""


class CodeTaken(ValueError):
    """The derived code is already another trigger's (a 40-bit collision): never shown twice."""


def _coupon(row: Any) -> Coupon:
    return Coupon(**{name: row[name] for name in _COLUMNS.split(", ")})


class CouponStore:
    def __init__(self, db: Any) -> None:
        self._db = db

    async def issue_unique(self, issue: Issue, code: str) -> Coupon:
        """Store the trigger's derived code; a replay finds the row the first try stored."""
        [stored] = await self.issue_unique_batch([(issue, code)])
        if isinstance(stored, CodeTaken):
            raise stored
        return stored

    async def issue_unique_batch(self, wanted: Sequence[tuple[Issue, str]]) -> list[Coupon | CodeTaken]:
        """issue_unique for each (issue, code), in order, in two statements on one connection
        (a round trip and a pool checkout per code cost the composer more CPU than rendering).

        A code whose trigger has no row afterwards is another trigger's: CodeTaken in its place.
        A data error (a NUL byte PostgreSQL refuses) fails the whole batch.
        """
        if not wanted:
            return []
        columns: list[list[Any]] = [[], [], [], [], [], [], []]
        for issue, code in wanted:
            values = (
                issue.workspace_id,
                code,
                issue.campaign,
                issue.trigger_id,
                issue.profile_id,
                issue.issued_at,
                issue.issued_at + issue.expires_after,
            )
            for column, value in zip(columns, values, strict=True):
                column.append(value)
        async with _connection(self._db) as conn:
            await conn.execute(
                "INSERT INTO coupons (workspace_id, code, campaign, trigger_id, profile_id, mode, issued_at, expires_at)"
                " SELECT w, c, n, t, p, 'unique', i, e FROM unnest($1::text[], $2::text[], $3::text[],"
                " $4::text[], $5::text[], $6::timestamptz[], $7::timestamptz[]) AS u(w, c, n, t, p, i, e)"
                " ON CONFLICT DO NOTHING",
                *columns,
            )
            rows = await conn.fetch(
                f"SELECT {_COLUMNS} FROM coupons WHERE (workspace_id, trigger_id) IN"
                " (SELECT * FROM unnest($1::text[], $2::text[]))",
                columns[0],
                columns[3],
            )
        stored = {(row["workspace_id"], row["trigger_id"]): _coupon(row) for row in rows}
        return [
            stored.get((issue.workspace_id, issue.trigger_id))
            # the code is another trigger's: showing it would make it redeemable twice
            or CodeTaken(f"coupon code of trigger {issue.trigger_id} is already another trigger's")
            for issue, _ in wanted
        ]

    async def claim_from_pool(self, issue: Issue, pool: str) -> Coupon:
        """The trigger's pool code: the one claimed before (a replay), else a free one, claimed.

        Claims for one trigger (a replay racing the first try after a rebalance) take turns on
        a transaction lock of that trigger, so the second finds the first's code; claims for
        different triggers skip each other's locked rows, so no code is handed out twice.
        """
        async with _connection(self._db) as conn, conn.transaction():
            await conn.execute(
                "SELECT pg_advisory_xact_lock(hashtextextended($1, 0))",
                f"coupon:{issue.workspace_id}:{issue.trigger_id}",
            )
            if (
                stored := await CouponStore(conn).for_trigger(issue.workspace_id, issue.trigger_id)
            ) is not None:
                return stored
            code = await conn.fetchval(
                "UPDATE coupon_pool_codes SET claimed_by = $3, claimed_at = $4"
                " WHERE workspace_id = $1 AND code = ("
                "   SELECT p.code FROM coupon_pool_codes p"
                "   WHERE p.workspace_id = $1 AND p.pool = $2 AND p.claimed_by IS NULL"
                # a code some email already shows (a derived one the shop uploaded too) is skipped
                "   AND NOT EXISTS (SELECT 1 FROM coupons c WHERE c.workspace_id = $1 AND c.code = p.code)"
                "   ORDER BY p.uploaded_at, p.code LIMIT 1 FOR UPDATE SKIP LOCKED)"
                " RETURNING code",
                issue.workspace_id,
                pool,
                issue.trigger_id,
                issue.issued_at,
            )
            if code is None:
                raise PoolEmpty(f"coupon pool {pool!r} has no free code")
            row = await conn.fetchrow(
                "INSERT INTO coupons (workspace_id, code, campaign, trigger_id, profile_id, mode, pool,"
                " issued_at, expires_at) VALUES ($1, $2, $3, $4, $5, 'pool', $6, $7, $8)"
                f" RETURNING {_COLUMNS}",
                issue.workspace_id,
                code,
                issue.campaign,
                issue.trigger_id,
                issue.profile_id,
                pool,
                issue.issued_at,
                issue.issued_at + issue.expires_after,
            )
            return _coupon(row)

    async def for_trigger(self, workspace_id: str, trigger_id: str) -> Coupon | None:
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM coupons WHERE workspace_id = $1 AND trigger_id = $2",
            workspace_id,
            trigger_id,
        )
        return None if row is None else _coupon(row)

    async def find(self, workspace_id: str, code: str) -> Coupon | None:
        """The workspace's coupon with this code; None for any other (another workspace's too)."""
        if not is_code(code):
            return None
        row = await self._db.fetchrow(
            f"SELECT {_COLUMNS} FROM coupons WHERE workspace_id = $1 AND code = $2", workspace_id, code
        )
        return None if row is None else _coupon(row)

    async def redeem(self, workspace_id: str, code: str, order_id: str | None, now: datetime) -> Redeemed:
        """Decide under the row's lock (rules.redemption) and mark it when the rules say so."""
        if not is_code(code):
            return Redeemed(None, redemption(None, workspace_id, order_id, now))
        async with _connection(self._db) as conn, conn.transaction():
            row = await conn.fetchrow(
                f"SELECT {_COLUMNS} FROM coupons WHERE workspace_id = $1 AND code = $2 FOR UPDATE",
                workspace_id,
                code,
            )
            coupon = None if row is None else _coupon(row)
            outcome = redemption(coupon, workspace_id, order_id, now)
            if outcome.redeem:
                row = await conn.fetchrow(
                    "UPDATE coupons SET redeemed_at = $3, order_id = $4 WHERE workspace_id = $1 AND code = $2"
                    f" RETURNING {_COLUMNS}",
                    workspace_id,
                    code,
                    now,
                    order_id,
                )
                coupon = _coupon(row)
            return Redeemed(coupon, outcome)

    async def upload(self, workspace_id: str, pool: str, lines: Iterable[str]) -> Uploaded:
        """Add a shop's codes to a pool: one a line, blank lines skipped, a code already there kept."""
        codes: list[str] = []
        invalid: list[str] = []
        for line in lines:
            text = line.strip()
            if not text:
                continue
            (codes if is_code(text) else invalid).append(text[:70])
        unique = list(dict.fromkeys(codes))
        added = await self._db.fetchval(
            "WITH added AS (INSERT INTO coupon_pool_codes (workspace_id, pool, code)"
            " SELECT $1, $2, unnest($3::text[]) ON CONFLICT DO NOTHING RETURNING 1)"
            " SELECT count(*) FROM added",
            workspace_id,
            pool,
            unique,
        )
        return Uploaded(int(added), len(codes) - int(added), invalid)

    async def pool_free(self, workspace_id: str, pool: str) -> int:
        """How many codes of the pool are still free (the pool-remaining gauge)."""
        return int(
            await self._db.fetchval(
                "SELECT count(*) FROM coupon_pool_codes WHERE workspace_id = $1 AND pool = $2 AND claimed_by IS NULL",
                workspace_id,
                pool,
            )
        )


class _connection:
    """A connection of the pool (or the connection itself) for one transaction."""

    def __init__(self, db: Any) -> None:
        self._db = db
        self._acquired: Any = None

    async def __aenter__(self) -> Any:
        if isinstance(self._db, asyncpg.Pool):
            self._acquired = self._db.acquire()
            return await self._acquired.__aenter__()
        return self._db

    async def __aexit__(self, *exc: object) -> None:
        if self._acquired is not None:
            await self._acquired.__aexit__(*exc)
