"""The reputation guard's PostgreSQL side (migration 014): counts, pauses, resumes.

Shared by the sender (counts its outcomes, judges, pauses, holds), ingest's mailbox (counts
complaints and asynchronous hard bounces), the management API and the CLI (pause, resume,
show). Every function takes an asyncpg connection or pool and runs one statement or one
short transaction. Times come from the caller (its injected clock).
"""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime, timedelta
from typing import Any

from retarget.common.reputation import Counts, Thresholds, judge, window_start

# The sender's outcomes are counted in the statement that records them (see the sender's FINISH).
ADD = """
INSERT INTO reputation_counts (workspace_id, domain, bucket, sent, hard_bounces, complaints)
VALUES ($1, lower($2), date_bin('1 hour', $3::timestamptz, 'epoch'), $4, $5, $6)
ON CONFLICT (workspace_id, domain, bucket) DO UPDATE
SET sent = reputation_counts.sent + EXCLUDED.sent,
    hard_bounces = reputation_counts.hard_bounces + EXCLUDED.hard_bounces,
    complaints = reputation_counts.complaints + EXCLUDED.complaints
"""

# Buckets from the window's start, and none that began before the workspace's last resume.
WINDOW = """
SELECT c.workspace_id, c.domain, sum(c.sent) AS sent, sum(c.hard_bounces) AS hard_bounces,
       sum(c.complaints) AS complaints
FROM reputation_counts c LEFT JOIN workspace_pauses p ON p.workspace_id = c.workspace_id
WHERE c.bucket >= $1 AND (p.counts_from IS NULL OR c.bucket >= p.counts_from)
  AND ($2::text IS NULL OR c.workspace_id = $2)
GROUP BY c.workspace_id, c.domain
"""

# RETURNING only when this call paused it: the first process to judge logs it, the others don't.
PAUSE = """
INSERT INTO workspace_pauses (workspace_id, paused, reason, detail, changed_at)
VALUES ($1, true, $2, $3, $4)
ON CONFLICT (workspace_id) DO UPDATE
SET paused = true, reason = EXCLUDED.reason, detail = EXCLUDED.detail, changed_at = EXCLUDED.changed_at
WHERE NOT workspace_pauses.paused
RETURNING workspace_id
"""

RESUME = """
UPDATE workspace_pauses SET paused = false, changed_at = $2, counts_from = $2, detail = $3
WHERE workspace_id = $1 AND paused
RETURNING workspace_id
"""

# The held messages are due at once (they wait in the sender's retry queue; the send log still
# guards against a second send). Those held before any attempt ('paused') start their retry
# budget now: the pause must not spend it (after a pause longer than the sender's max age, a
# greylisting server's first 4xx would otherwise expire the message with no retry at all).
RELEASE = """
UPDATE send_retries r SET not_before = $2, leased_until = NULL,
    first_deferred_at = CASE WHEN l.last_reason = 'paused' THEN $2 ELSE r.first_deferred_at END
FROM send_log l
WHERE l.message_id = r.message_id AND l.workspace_id = $1 AND l.state = 'deferred'
"""

# Buckets older than any window can't count again; each check deletes a few (bounded, oldest first).
PRUNE = """
DELETE FROM reputation_counts WHERE ctid IN (
    SELECT ctid FROM reputation_counts WHERE bucket < $1 ORDER BY bucket LIMIT 1000)
"""
KEEP = timedelta(days=31)  # longer than the longest window setting (30 days)

PAUSED = "SELECT workspace_id, reason, detail, changed_at FROM workspace_pauses WHERE paused"
STATE = "SELECT paused, reason, detail, changed_at, counts_from FROM workspace_pauses WHERE workspace_id = $1"
HELD = """SELECT count(*) FROM send_log WHERE workspace_id = $1 AND state = 'deferred' AND last_reason = 'paused'"""


@dataclass(frozen=True)
class Pause:
    workspace_id: str
    reason: str
    detail: str
    since: datetime


async def add_counts(
    db: Any, workspace_id: str, domain: str, at: datetime, *, hard_bounces: int = 0, complaints: int = 0
) -> None:
    await db.execute(ADD, workspace_id, domain, at, 0, hard_bounces, complaints)


async def window_counts(
    db: Any, since: datetime, workspace_id: str | None = None
) -> dict[str, dict[str, Counts]]:
    """Per workspace, per sending domain: the counts since `since` (and since its last resume)."""
    counts: dict[str, dict[str, Counts]] = {}
    for r in await db.fetch(WINDOW, since, workspace_id):
        counts.setdefault(r["workspace_id"], {})[r["domain"]] = Counts(
            int(r["sent"]), int(r["hard_bounces"]), int(r["complaints"])
        )
    return counts


async def prune(db: Any, now: datetime) -> None:
    await db.execute(PRUNE, now - KEEP)


async def pause(db: Any, workspace_id: str, reason: str, detail: str, at: datetime) -> bool:
    """Pause the workspace's marketing mail; False when it was paused already."""
    return await db.fetchval(PAUSE, workspace_id, reason, detail, at) is not None


async def resume(db: Any, workspace_id: str, at: datetime, note: str = "") -> bool:
    """Lift the pause and release its held messages; False when it was not paused."""
    async with db.acquire() if hasattr(db, "acquire") else _same(db) as conn, conn.transaction():
        if await conn.fetchval(RESUME, workspace_id, at, note) is None:
            return False
        await conn.execute(RELEASE, workspace_id, at)
    return True


async def paused_workspaces(db: Any) -> dict[str, Pause]:
    return {
        r["workspace_id"]: Pause(r["workspace_id"], r["reason"], r["detail"], r["changed_at"])
        for r in await db.fetch(PAUSED)
    }


async def state_of(db: Any, workspace_id: str) -> dict[str, Any]:
    """What `retarget workspace reputation` and the API show besides the rates."""
    row = await db.fetchrow(STATE, workspace_id)
    held = int(await db.fetchval(HELD, workspace_id))
    if row is None:
        return {
            "paused": False,
            "reason": None,
            "detail": "",
            "since": None,
            "counts_from": None,
            "held": held,
        }
    return {
        "paused": bool(row["paused"]),
        "reason": row["reason"],
        "detail": row["detail"],
        "since": row["changed_at"],
        "counts_from": row["counts_from"],
        "held": held,
    }


class _same:
    """A connection used as if it came from a pool (the CLI has one connection)."""

    def __init__(self, conn: Any) -> None:
        self.conn = conn

    async def __aenter__(self) -> Any:
        return self.conn

    async def __aexit__(self, *exc: object) -> None:
        return None


async def report(
    db: Any, workspace_id: str, thresholds: Thresholds, window: timedelta, now: datetime
) -> dict[str, Any]:
    """The workspace's rates over its window and its pause, as the CLI and the API show them."""
    since = window_start(now, window)
    counts = (await window_counts(db, since, workspace_id)).get(workspace_id, {})
    verdict = judge(counts, thresholds)
    state = await state_of(db, workspace_id)
    return {
        "workspace_id": workspace_id,
        "window_start": since.isoformat(),
        "min_sent": thresholds.min_sent,
        "level": verdict.level,
        "rates": [
            {
                "domain": r.domain,
                "kind": r.kind,
                "events": r.events,
                "sent": r.sent,
                "rate": round(r.value, 6),
                "level": r.level,
                "pause_at": thresholds.complaint_pause
                if r.kind == "complaint_rate"
                else thresholds.hard_bounce_pause,
            }
            for r in verdict.rates
        ],
        **{k: (v.isoformat() if isinstance(v, datetime) else v) for k, v in state.items()},
    }
