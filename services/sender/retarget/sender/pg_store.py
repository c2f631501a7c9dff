"""DeliveryStore on PostgreSQL (asyncpg). Every method is one statement or one short transaction.

Claims and outcomes are group-committed (group_commit.py): concurrent callers share one
statement per round trip. Times come from the caller's clock, not now(), so the retry
schedule follows the injected clock in tests exactly as it follows the wall clock in production.

The store works for one deployment, named by its topic prefix (pg_queries.py, migration 018).
"""

from __future__ import annotations

import contextlib
from collections.abc import Sequence
from datetime import datetime

import asyncpg

from retarget.common.db import create_pool
from retarget.common.poison import is_data_error
from retarget.common.settings import CommonSettings
from retarget.sender.group_commit import GroupCommit
from retarget.sender.pg_queries import (
    BACKLOG,
    CAP_HISTORY,
    CLAIM,
    DEFER,
    FINISH,
    HAND_OFF,
    HANDED_OFF_DONE,
    HANDED_OFF_FINAL,
    KNOWN,
    LEASE,
    NEW_RETRIES,
    RECLAIM,
    ROW,
    SUPPRESS,
    SUPPRESSED,
    SWEEP,
    SWEEP_CLOSE,
)
from retarget.sender.store import (
    Claim,
    DueRetry,
    Finish,
    NewClaim,
    PublishRows,
    RecipientKey,
    RetryEntry,
    SendLogRow,
    SuppressionKey,
    unconfirmed,
)

_NO_TRANSACTION = contextlib.nullcontext()


def _row(record: asyncpg.Record) -> SendLogRow:
    return SendLogRow(**dict(record))


def _row_of_twin(results: list[Claim], message_id: str) -> SendLogRow:
    return next(r.row for r in results if r.row.message_id == message_id)


def _retry_columns(retries: list[tuple[str, RetryEntry]]) -> list[list[object]]:
    return [
        [m for m, _ in retries],
        [r.payload for _, r in retries],
        [r.first_deferred_at for _, r in retries],
        [r.not_before for _, r in retries],
    ]


class PostgresDeliveryStore:
    def __init__(self, settings: CommonSettings, pool: asyncpg.Pool | None = None) -> None:
        if not settings.topic_prefix:
            # '' marks the rows every deployment may take: a sender writing it would share its
            # claims and retries with every other deployment on the database
            raise ValueError("RETARGET_TOPIC_PREFIX is empty: it names the sender's deployment")
        self.settings = settings
        self.deployment = settings.topic_prefix  # its outcomes go to this prefix's deliveries topic
        self._pool = pool
        self._claims: GroupCommit[NewClaim, Claim] = GroupCommit(self._claim_group, isolate=is_data_error)
        self._finishes: GroupCommit[Finish, bool] = GroupCommit(self._finish_group, isolate=is_data_error)

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

    async def suppressions(self, keys: Sequence[RecipientKey]) -> dict[RecipientKey, str]:
        if not keys:
            return {}
        rows = await self.pool.fetch(SUPPRESSED, *(list(column) for column in zip(*keys, strict=True)))
        return {(r["ws"], bytes(r["h"]), r["c"]): r["reason"] for r in rows}

    async def known(self, message_ids: Sequence[str]) -> dict[str, SendLogRow]:
        if not message_ids:
            return {}
        return {r["message_id"]: _row(r) for r in await self.pool.fetch(KNOWN, list(message_ids))}

    async def cap_history(
        self, keys: Sequence[SuppressionKey], since: datetime
    ) -> dict[SuppressionKey, list[tuple[str, datetime]]]:
        if not keys:
            return {}
        rows = await self.pool.fetch(CAP_HISTORY, [k[0] for k in keys], [k[1] for k in keys], since)
        history: dict[SuppressionKey, list[tuple[str, datetime]]] = {}
        for r in rows:
            history.setdefault((r["workspace_id"], bytes(r["recipient_hash"])), []).append(
                (r["campaign"], r["created_at"])
            )
        return history

    async def claim(self, claim: NewClaim) -> Claim:
        return await self._claims.submit(claim)

    async def _claim_group(self, claims: list[NewClaim]) -> list[Claim]:
        columns = list(
            zip(
                *(
                    (
                        c.message_id,
                        c.workspace_id,
                        c.campaign,
                        c.profile_id,
                        c.recipient_hash,
                        c.state,
                        c.reason,
                        c.at,
                    )
                    for c in claims
                ),
                strict=True,
            )
        )
        async with self.pool.acquire() as conn:
            # One statement is atomic by itself: BEGIN and COMMIT (two more round trips) only
            # when a postponed claim's retry row must be written with it.
            atomic = conn.transaction() if any(c.retry is not None for c in claims) else _NO_TRANSACTION
            async with atomic:
                inserted = {
                    r["message_id"]: _row(r)
                    for r in await conn.fetch(CLAIM, *map(list, columns), self.deployment)
                }
                deferred = [c for c in claims if c.retry is not None and c.message_id in inserted]
                if deferred:
                    await conn.execute(
                        NEW_RETRIES,
                        *_retry_columns([(c.message_id, c.retry) for c in deferred if c.retry is not None]),
                        self.deployment,
                    )
            others = [c.message_id for c in claims if c.message_id not in inserted]
            existing = {r["message_id"]: _row(r) for r in await conn.fetch(KNOWN, others)} if others else {}
        results: list[Claim] = []
        for c in claims:
            row = inserted.pop(c.message_id, None)  # a message id twice in one group: the first owns it
            results.append(
                Claim(owned=True, row=row)
                if row
                else Claim(owned=False, row=existing.get(c.message_id) or _row_of_twin(results, c.message_id))
            )
        return results

    async def reclaim_deferred(self, message_id: str, at: datetime) -> Claim | None:
        async with self.pool.acquire() as conn:
            updated = await conn.fetchrow(RECLAIM, message_id, at, self.deployment)
            if updated is not None:
                return Claim(owned=True, row=_row(updated))
            existing = await conn.fetchrow(f"SELECT {ROW} FROM send_log WHERE message_id = $1", message_id)
        return None if existing is None else Claim(owned=False, row=_row(existing))

    async def finish(self, finish: Finish) -> bool:
        return await self._finishes.submit(finish)

    async def _finish_group(self, finishes: list[Finish]) -> list[bool]:
        updates = list(
            zip(
                *(
                    (f.message_id, f.state, f.reason, f.code, f.reply_text, f.at, f.sending_domain)
                    for f in finishes
                ),
                strict=True,
            )
        )
        suppress = sorted({(f.workspace_id, f.recipient_hash): f for f in finishes if f.suppress}.items())
        retries = [(f.message_id, f.retry) for f in finishes if f.retry is not None]
        if not suppress and not retries:  # the usual group: one UPDATE, atomic by itself
            stored = {r["message_id"] for r in await self.pool.fetch(FINISH, *map(list, updates))}
            return [f.message_id in stored for f in finishes]
        async with self.pool.acquire() as conn, conn.transaction():
            stored = {r["message_id"] for r in await conn.fetch(FINISH, *map(list, updates))}
            if suppress:
                await conn.execute(
                    SUPPRESS,
                    [ws for (ws, _), _ in suppress],
                    [h for (_, h), _ in suppress],
                    ["hard_bounce"] * len(suppress),
                    [f"smtp:{f.code}" for _, f in suppress],
                    [f.at for _, f in suppress],
                )
            retries = [(m, r) for m, r in retries if m in stored]  # a swept claim is not retried
            if retries:
                await conn.execute(DEFER, *_retry_columns(retries), self.deployment)
        return [f.message_id in stored for f in finishes]

    async def lease_due(self, now: datetime, lease_until: datetime, limit: int) -> list[DueRetry]:
        rows = await self.pool.fetch(LEASE, now, lease_until, limit, self.deployment)
        return [DueRetry(r["message_id"], bytes(r["payload"]), r["first_deferred_at"]) for r in rows]

    async def drop_retry(self, message_id: str) -> None:
        await self.pool.execute("DELETE FROM send_retries WHERE message_id = $1", message_id)

    async def postpone(self, message_id: str, not_before: datetime) -> None:
        await self.pool.execute(
            "UPDATE send_retries SET not_before = $2, leased_until = NULL WHERE message_id = $1",
            message_id,
            not_before,
        )

    async def retry_backlog(self) -> tuple[int, datetime | None]:
        row = await self.pool.fetchrow(BACKLOG, self.deployment)
        return int(row[0]), row[1]

    async def sweep_stale_claims(
        self, claimed_before: datetime, at: datetime, publish: PublishRows | None = None
    ) -> list[SendLogRow]:
        async with self.pool.acquire() as conn, conn.transaction():
            stale = [_row(r) for r in await conn.fetch(SWEEP, claimed_before, self.deployment)]
            if not stale:
                return []
            closed = [unconfirmed(row, at) for row in stale]
            if publish is not None:  # acknowledged before the rows change: a crash loses no outcome
                await publish(closed)
            ids = [r.message_id for r in closed]
            await conn.execute(SWEEP_CLOSE, ids, at)
            await conn.execute("DELETE FROM send_retries WHERE message_id = ANY($1::text[])", ids)
        return closed

    async def hand_off(self, message_ids: Sequence[str]) -> None:
        # Row by row, each its own statement: one UPDATE of all of them held one row's lock while
        # it waited for another's, and deadlocked with the claimant's FINISH locking the same rows
        # in its own order; PostgreSQL then aborted one, and an aborted FINISH leaves a message
        # the relay accepted 'claimed' (swept as unconfirmed). Only a batch that met claims pays.
        async with self.pool.acquire() as conn:
            for message_id in sorted(set(message_ids)):
                await conn.execute(HAND_OFF, message_id)

    async def publish_handed_off(self, limit: int, publish: PublishRows) -> list[SendLogRow]:
        async with self.pool.acquire() as conn, conn.transaction():
            final = [_row(r) for r in await conn.fetch(HANDED_OFF_FINAL, limit, self.deployment)]
            if final:
                await publish(final)  # acknowledged before the mark goes: a crash loses no outcome
                await conn.execute(HANDED_OFF_DONE, [r.message_id for r in final])
        return final

    async def check(self) -> str | None:
        try:
            await self.pool.fetchval("SELECT 1 FROM send_retries LIMIT 1")
        except (OSError, asyncpg.PostgresError, RuntimeError) as exc:
            return f"{type(exc).__name__}: {exc}"
        return None
