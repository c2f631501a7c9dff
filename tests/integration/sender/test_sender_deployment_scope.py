"""Two deployments on one database (migration 018): each sender's retry loop takes only its own
claims and retries, and the rows written before the migration ('') stay anyone's.

These tests work on a database of their own on the stack's PostgreSQL server: the shared
database holds '' rows of every sender of an older version running there (other branches,
`make demo`), which these stores would take and which would make the counts inexact; and such a
sender takes every deployment's retries, so the last test (two real senders) would lose its
retry to one.
"""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from retarget.common.identity import email_digest
from retarget.common.testing import create_private_database, drop_private_database
from retarget.sender.local_mta import free_port
from retarget.sender.pg_store import PostgresDeliveryStore
from retarget.sender.settings import SenderSettings
from retarget.sender.store import Finish, NewClaim, RetryEntry, SendLogRow

from .conftest import ScriptedSmtp, outbound_message, produce

pytestmark = pytest.mark.integration

HOUR = timedelta(hours=1)


@pytest.fixture(scope="module")
def private_database(stack: dict[str, str]) -> Iterator[str]:
    admin_dsn = stack["RETARGET_DATABASE_URL"]
    dsn = asyncio.run(create_private_database(admin_dsn, "retarget_scope"))
    yield dsn
    asyncio.run(drop_private_database(admin_dsn, dsn))


@pytest.fixture
async def db(private_database: str) -> AsyncIterator[asyncpg.Connection]:
    conn = await asyncpg.connect(private_database)
    await conn.execute("TRUNCATE send_log CASCADE")  # every test starts from an empty log
    yield conn
    await conn.close()


async def _started(settings: SenderSettings) -> PostgresDeliveryStore:
    store = PostgresDeliveryStore(settings)
    await store.start()
    return store


@pytest.fixture
async def stores(
    private_database: str, sender_settings: SenderSettings, db: asyncpg.Connection
) -> AsyncIterator[tuple[PostgresDeliveryStore, PostgresDeliveryStore]]:
    """Deployment A (the test's topic prefix) and deployment B (another prefix), one database."""
    a = await _started(sender_settings.model_copy(update={"database_url": private_database}))
    other = f"{sender_settings.topic_prefix}-b"
    b = await _started(
        sender_settings.model_copy(update={"database_url": private_database, "topic_prefix": other})
    )
    yield a, b
    await a.close()
    await b.close()


def _claim(at: datetime, state: str = "claimed", retry: RetryEntry | None = None) -> NewClaim:
    digest = email_digest(f"{uuid.uuid4().hex}@example.com")
    reason = "quiet_hours" if state == "deferred" else None
    return NewClaim(f"m-{uuid.uuid4().hex}", "ws-scope", "cart", "p1", digest, state, reason, at, retry)


def _finish(claim: NewClaim, state: str, at: datetime, retry: RetryEntry | None = None) -> Finish:
    code, reason = (451, "soft_bounce") if state == "deferred" else (250, "accepted")
    return Finish(
        claim.message_id, "ws-scope", claim.recipient_hash, state, reason, code, "x", at, retry=retry
    )


async def _legacy_row(
    db: asyncpg.Connection, state: str, claimed_at: datetime, retry_due: datetime | None
) -> str:
    """A row as a sender before migration 018 wrote it: no deployment named."""
    message_id = f"m-{uuid.uuid4().hex}"
    await db.execute(
        """INSERT INTO send_log (message_id, workspace_id, campaign, profile_id, recipient_hash, state,
                                 attempts, claimed_at, created_at, updated_at)
           VALUES ($1, 'ws-scope', 'cart', 'p1', '\\x00'::bytea, $2, 1, $3, $3, $3)""",
        message_id,
        state,
        claimed_at,
    )
    if retry_due is not None:
        await db.execute(
            "INSERT INTO send_retries (message_id, payload, first_deferred_at, not_before)"
            " VALUES ($1, 'p', $2, $2)",
            message_id,
            retry_due,
        )
    return message_id


async def _swept(store: PostgresDeliveryStore, now: datetime) -> set[str]:
    return {r.message_id for r in await store.sweep_stale_claims(now - timedelta(minutes=10), now)}


async def _leased(store: PostgresDeliveryStore, now: datetime) -> set[str]:
    return {d.message_id for d in await store.lease_due(now, now, 1000)}  # lease ends at once


async def _published_handed_off(store: PostgresDeliveryStore) -> set[str]:
    published: list[SendLogRow] = []

    async def publish(rows: list[SendLogRow]) -> None:
        published.extend(rows)

    await store.publish_handed_off(1000, publish)
    return {r.message_id for r in published}


async def test_a_stale_claim_is_swept_only_by_the_deployment_that_made_it(
    stores: tuple[PostgresDeliveryStore, PostgresDeliveryStore], db: asyncpg.Connection
) -> None:
    a, b = stores
    now = datetime.now(UTC)
    stale = _claim(now - HOUR)
    await a.claim(stale)
    assert await db.fetchval("SELECT deployment FROM send_log WHERE message_id = $1", stale.message_id) == (
        a.deployment
    )
    assert await _swept(b, now) == set()  # B's lease, B's topic: not B's to close
    assert await _swept(a, now) == {stale.message_id}


async def test_a_due_retry_is_leased_only_by_the_deployment_that_deferred_it(
    stores: tuple[PostgresDeliveryStore, PostgresDeliveryStore], db: asyncpg.Connection
) -> None:
    a, b = stores
    now = datetime.now(UTC)
    due = RetryEntry(b"payload", now - HOUR, now - HOUR)
    postponed = _claim(now, state="deferred", retry=due)  # admission's quiet hours: NEW_RETRIES
    await a.claim(postponed)
    greylisted = _claim(now)  # a 4xx after the claim: DEFER
    await a.claim(greylisted)
    assert await a.finish(_finish(greylisted, "deferred", now, retry=due))
    assert await _leased(b, now) == set()  # else B would send A's mail through B's relay
    assert await _leased(a, now) == {postponed.message_id, greylisted.message_id}


async def test_a_handed_off_outcome_is_published_only_by_its_own_deployment(
    stores: tuple[PostgresDeliveryStore, PostgresDeliveryStore],
) -> None:
    a, b = stores
    now = datetime.now(UTC)
    claim = _claim(now)
    await a.claim(claim)
    await a.hand_off([claim.message_id])
    assert await a.finish(_finish(claim, "sent", now))
    assert await _published_handed_off(b) == set()  # on B's deliveries topic A would never see it
    assert await _published_handed_off(a) == {claim.message_id}


async def test_the_retry_backlog_counts_only_its_own_deployment_and_the_unnamed_rows(
    stores: tuple[PostgresDeliveryStore, PostgresDeliveryStore], db: asyncpg.Connection
) -> None:
    a, b = stores
    now = datetime.now(UTC)
    for store, first_deferred in ((a, now - HOUR), (a, now - 2 * HOUR), (b, now - 5 * HOUR)):
        await store.claim(_claim(now, state="deferred", retry=RetryEntry(b"p", first_deferred, now + HOUR)))
    assert await a.retry_backlog() == (2, now - 2 * HOUR)
    assert await b.retry_backlog() == (1, now - 5 * HOUR)
    await _legacy_row(db, "deferred", now, retry_due=now - 9 * HOUR)
    assert await a.retry_backlog() == (3, now - 9 * HOUR)
    assert await b.retry_backlog() == (2, now - 9 * HOUR)


async def test_rows_written_before_the_migration_are_taken_by_either_deployment(
    stores: tuple[PostgresDeliveryStore, PostgresDeliveryStore], db: asyncpg.Connection
) -> None:
    now = datetime.now(UTC)
    for store in stores:
        stale = await _legacy_row(db, "claimed", now - HOUR, retry_due=None)
        assert await _swept(store, now) == {stale}
        due = await _legacy_row(db, "deferred", now - HOUR, retry_due=now - HOUR)
        assert await _leased(store, now) == {due}
        await db.execute("DELETE FROM send_log WHERE message_id = $1", due)
        final = await _legacy_row(db, "sent", now, retry_due=None)
        await db.execute("UPDATE send_log SET handed_off = true WHERE message_id = $1", final)
        assert await _published_handed_off(store) == {final}


async def test_an_unnamed_retry_becomes_the_deployment_that_retries_it(
    stores: tuple[PostgresDeliveryStore, PostgresDeliveryStore], db: asyncpg.Connection
) -> None:
    """A's re-claim names A: should A die mid-SMTP, B's sweep must not close the claim with its
    lease; and the retry row A defers again is A's, not B's to send."""
    a, b = stores
    now = datetime.now(UTC)
    legacy = await _legacy_row(db, "deferred", now - HOUR, retry_due=now - HOUR)
    assert await _leased(a, now) == {legacy}
    reclaimed = await a.reclaim_deferred(legacy, now - HOUR)
    assert reclaimed is not None and reclaimed.owned
    assert await _swept(b, now) == set()
    again = Finish(
        legacy,
        "ws-scope",
        b"\x00",
        "deferred",
        "soft_bounce",
        451,
        "x",
        now,
        retry=RetryEntry(b"p", now - HOUR, now - timedelta(minutes=1)),
    )
    assert await a.finish(again)
    assert await _leased(b, now) == set()
    assert await _leased(a, now) == {legacy}


@pytest.fixture
def other_relay() -> Iterator[tuple[ScriptedSmtp, int]]:
    """Deployment B's own SMTP relay."""
    relay, port = ScriptedSmtp(), free_port()
    controller = Controller(relay, hostname="127.0.0.1", port=port)
    controller.start()
    yield relay, port
    controller.stop()


async def test_a_greylisted_message_is_retried_by_its_own_deployment_through_its_own_relay(
    private_database: str,
    start_sender: Any,
    sender_settings: SenderSettings,
    smtp: ScriptedSmtp,
    other_relay: tuple[ScriptedSmtp, int],
    workspace_id: str,
    read_topic: Any,
) -> None:
    """Issue #19: B, polling far more often than A, leased A's due retry, sent it through B's relay
    and published 'sent' on B's deliveries topic, so A never saw the outcome."""
    relay_b, port_b = other_relay
    await start_sender(
        topic_prefix=f"{sender_settings.topic_prefix}-b",
        sender_group=f"sender-{sender_settings.topic_prefix}-b",
        smtp_url=f"smtp://127.0.0.1:{port_b}",
        retry_poll_s=0.05,
        database_url=private_database,
    )
    mine = await start_sender(retry_poll_s=1.0, database_url=private_database)
    deliveries = await read_topic(mine.topics.deliveries)
    greylisted = outbound_message(workspace_id, f"flaky-{workspace_id}@example.com")  # 451, then 250
    await produce(sender_settings, greylisted)

    def sent(_: list[bytes]) -> bool:
        return ("sent", greylisted.message_id) in {(d.outcome, d.message_id) for d in deliveries.deliveries()}

    await deliveries.until(sent, timeout_s=90)
    message_id_header = f"<{greylisted.message_id}@shop.example>"
    assert (smtp.count(message_id_header), relay_b.count(message_id_header)) == (1, 0)
