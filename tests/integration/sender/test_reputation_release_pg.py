"""A resume releases only its own workspace's held mail (atk17): another workspace's deferred
messages (held by its own pause, or waiting out a backoff) keep their time. The mutation that
dropped `l.workspace_id = $1` from RELEASE survived every test."""

from __future__ import annotations

import uuid
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from retarget.common.identity import email_digest
from retarget.common.reputation_store import pause, resume
from retarget.sender.rules import RetryPolicy, schedule_retry

pytestmark = pytest.mark.integration

LATER = datetime(2100, 1, 1, tzinfo=UTC)
# A deployment no sender runs (migration 018): no test's retry loop takes a released row before
# it is read; the release is per workspace, whichever deployment holds the rows.
ELSEWHERE = "no-sender-runs-this"


async def _deferred(conn: asyncpg.Connection, workspace_id: str, reason: str = "paused") -> str:
    message_id = f"m-{uuid.uuid4().hex}"
    await conn.execute(
        """INSERT INTO send_log (message_id, workspace_id, campaign, profile_id, recipient_hash, state, last_reason,
                                 deployment)
           VALUES ($1, $2, 'abandoned_cart', 'p1', $3, 'deferred', $4, $5)""",
        message_id,
        workspace_id,
        email_digest(f"{uuid.uuid4().hex[:8]}@example.com"),
        reason,
        ELSEWHERE,
    )
    await conn.execute(
        "INSERT INTO send_retries (message_id, payload, first_deferred_at, not_before, deployment)"
        " VALUES ($1, $2, now() - interval '4 days', $3, $4)",
        message_id,
        b"To: x@example.com",
        LATER,
        ELSEWHERE,
    )
    return message_id


async def test_a_resume_releases_only_its_own_workspaces_mail(stack: dict[str, str]) -> None:
    mine, theirs = f"ws-{uuid.uuid4().hex[:8]}", f"ws-{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    try:
        held, other = await _deferred(conn, mine), await _deferred(conn, theirs)
        now = datetime.now(UTC)
        assert await pause(conn, mine, "operator", "test", now)
        assert await resume(conn, mine, now + timedelta(seconds=1))
        times = {
            r["message_id"]: r["not_before"]
            for r in await conn.fetch(
                "SELECT message_id, not_before FROM send_retries WHERE message_id = ANY($1::text[])",
                [held, other],
            )
        }
        assert times[held] < LATER and times[other] == LATER
    finally:
        for ws in (mine, theirs):
            await conn.execute(
                "DELETE FROM send_retries WHERE message_id IN (SELECT message_id FROM send_log WHERE workspace_id = $1)",
                ws,
            )
            await conn.execute("DELETE FROM send_log WHERE workspace_id = $1", ws)
            await conn.execute("DELETE FROM workspace_pauses WHERE workspace_id = $1", ws)
        await conn.close()


async def test_a_pause_does_not_spend_a_held_messages_retry_budget(stack: dict[str, str]) -> None:
    """Held at admission four days ago (longer than the sender's 72 h max age): after the resume
    its first transient failure must be retried, not expired on the spot (atk17)."""
    ws = f"ws-{uuid.uuid4().hex[:8]}"
    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    try:
        held, backoff = await _deferred(conn, ws), await _deferred(conn, ws, reason="greylisted")
        now = datetime.now(UTC)
        assert await pause(conn, ws, "operator", "test", now - timedelta(days=4))
        assert await resume(conn, ws, now)
        first = {
            r["message_id"]: r["first_deferred_at"]
            for r in await conn.fetch(
                "SELECT message_id, first_deferred_at FROM send_retries WHERE message_id = ANY($1::text[])",
                [held, backoff],
            )
        }
        assert first[held] == now  # never attempted: its budget starts at the resume
        assert first[backoff] < now - timedelta(days=3)  # deferred by its server: its own clock
        next_try = schedule_retry(RetryPolicy(), 1, first[held], now + timedelta(seconds=5))
        assert isinstance(next_try, datetime), next_try  # a greylisting 4xx is retried, not expired
    finally:
        await conn.execute(
            "DELETE FROM send_retries WHERE message_id IN (SELECT message_id FROM send_log WHERE workspace_id = $1)",
            ws,
        )
        await conn.execute("DELETE FROM send_log WHERE workspace_id = $1", ws)
        await conn.execute("DELETE FROM workspace_pauses WHERE workspace_id = $1", ws)
        await conn.close()
