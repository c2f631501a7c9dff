"""Erasure and export against the real PostgreSQL server."""

from __future__ import annotations

import uuid

import asyncpg
import pytest

from retarget.common.identity import email_digest
from retarget.common.privacy import ERASED_PROFILE, Person, erase, export

pytestmark = pytest.mark.integration

# The rows name a deployment no sender runs (migration 018), so no test's retry loop takes the
# due retry below before the erasure; erasure is per workspace, whichever deployment wrote them.
ELSEWHERE = "no-sender-runs-this"


async def _send_log(
    conn, workspace: str, message_id: str, email: str, profile: str, state: str = "sent"
) -> None:
    await conn.execute(
        """INSERT INTO send_log (message_id, workspace_id, campaign, profile_id, recipient_hash, state,
                                 last_reply, last_reason, deployment)
           VALUES ($1, $2, 'abandoned_cart', $3, $4, $5, '250 ok for <x@y>', 'r', $6)""",
        message_id,
        workspace,
        profile,
        email_digest(email),
        state,
        ELSEWHERE,
    )


async def test_erasure_leaves_only_a_hashed_suppression_and_a_record(stack, workspace_id):
    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    try:
        ann, bob = f"ann-{uuid.uuid4().hex[:6]}@example.com", f"bob-{uuid.uuid4().hex[:6]}@example.com"
        m1, m2, m3 = (f"m-{uuid.uuid4().hex}" for _ in range(3))
        await _send_log(conn, workspace_id, m1, ann, "user-ann")
        await _send_log(conn, workspace_id, m2, ann, "user-ann", state="deferred")
        await _send_log(conn, workspace_id, m3, bob, "user-bob")
        await conn.execute(
            "INSERT INTO send_retries (message_id, payload, first_deferred_at, not_before, deployment)"
            " VALUES ($1, $2, now(), now(), $3)",
            m2,
            f"To: {ann}".encode(),
            ELSEWHERE,
        )
        before = await export(conn, Person(workspace_id, email=ann))
        assert sorted(m["message_id"] for m in before["messages"]) == sorted([m1, m2])

        report = await erase(conn, Person(workspace_id, user_id="user-ann"), source="test")

        assert (report.suppressed, report.send_log_rows, report.retries_deleted) == (1, 2, 1)
        reason = await conn.fetchval(
            "SELECT reason FROM suppressions WHERE workspace_id = $1 AND email_hash = $2",
            workspace_id,
            email_digest(ann),
        )
        assert reason == "erased"
        scrubbed = await conn.fetch(
            "SELECT profile_id, last_reply, last_reason FROM send_log WHERE message_id = ANY($1::text[])",
            [m1, m2],
        )
        assert {tuple(r) for r in scrubbed} == {(ERASED_PROFILE, None, None)}
        assert await conn.fetchval("SELECT count(*) FROM send_retries WHERE message_id = $1", m2) == 0
        untouched = await conn.fetchrow(
            "SELECT profile_id, last_reply FROM send_log WHERE message_id = $1", m3
        )
        assert tuple(untouched) == ("user-bob", "250 ok for <x@y>")

        after = await export(conn, Person(workspace_id, email=ann))
        assert [s["reason"] for s in after["suppressions"]] == ["erased"]
        assert len(after["erasures"]) == 1 and after["erasures"][0]["send_log_rows"] == 2
        assert all(m["profile_id"] == ERASED_PROFILE and m["last_reason"] is None for m in after["messages"])
    finally:
        await conn.close()


def test_a_person_needs_an_identifier():
    with pytest.raises(ValueError, match="email or userId"):
        Person("ws")


async def test_erasure_scrubs_the_profile_from_its_coupons_and_export_lists_them(stack, workspace_id):
    """The coupons table (migration 013) names the profile an email's code was for: an erasure
    left it there and an export didn't show it (atk17)."""
    from datetime import UTC, datetime, timedelta

    from retarget.coupons.store import CouponStore, Issue

    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    try:
        ann = f"ann-{uuid.uuid4().hex[:6]}@example.com"
        await _send_log(conn, workspace_id, f"m-{uuid.uuid4().hex}", ann, "anon-ann")
        now = datetime.now(UTC)
        store = CouponStore(conn)
        for profile, code in (
            ("anon-ann", "RT-ERASE0001"),
            ("user-ann", "RT-ERASE0002"),
            ("user-bob", "RT-KEEP0001"),
        ):
            await store.issue_unique(
                Issue(workspace_id, "abandoned_cart", uuid.uuid4().hex, profile, now, timedelta(days=7)), code
            )
        shown = await export(conn, Person(workspace_id, email=ann, user_id="user-ann"))
        assert sorted(c["code"] for c in shown["coupons"]) == ["RT-ERASE0001", "RT-ERASE0002"]

        await erase(conn, Person(workspace_id, email=ann, user_id="user-ann"), source="test")

        rows = await conn.fetch("SELECT code, profile_id FROM coupons WHERE workspace_id = $1", workspace_id)
        assert {r["code"]: r["profile_id"] for r in rows} == {
            "RT-ERASE0001": ERASED_PROFILE,
            "RT-ERASE0002": ERASED_PROFILE,
            "RT-KEEP0001": "user-bob",
        }
        assert (await store.find(workspace_id, "RT-ERASE0001")) is not None  # the code stays single-use
    finally:
        await conn.execute("DELETE FROM coupons WHERE workspace_id = $1", workspace_id)
        await conn.close()
