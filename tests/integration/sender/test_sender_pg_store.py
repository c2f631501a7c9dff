"""The PostgreSQL store's claim state machine, against the real database."""

from __future__ import annotations

import asyncio
import uuid
from collections.abc import AsyncIterator
from dataclasses import replace
from datetime import UTC, datetime, timedelta

import asyncpg
import pytest

from retarget.common.identity import email_digest
from retarget.sender.pg_store import PostgresDeliveryStore
from retarget.sender.settings import SenderSettings
from retarget.sender.store import Claim, Finish, NewClaim, RetryEntry, SendLogRow

pytestmark = pytest.mark.integration


@pytest.fixture
async def store(sender_settings: SenderSettings) -> AsyncIterator[PostgresDeliveryStore]:
    store = PostgresDeliveryStore(sender_settings)
    await store.start()
    yield store
    await store.close()


def _claim(workspace_id: str, at: datetime, state: str = "claimed") -> NewClaim:
    digest = email_digest(f"{uuid.uuid4().hex}@example.com")
    return NewClaim(f"m-{uuid.uuid4().hex}", workspace_id, "cart", "p1", digest, state, None, at)


async def test_only_the_first_claim_owns_a_message(store: PostgresDeliveryStore, workspace_id: str) -> None:
    at = datetime.now(UTC)
    claim = _claim(workspace_id, at)
    first, second = await store.claim(claim), await store.claim(claim)
    assert first.owned and not second.owned
    assert (second.row.state, second.row.attempts, second.row.updated_at) == ("claimed", 1, at)


async def test_a_deferred_message_is_reclaimed_once_and_its_retry_leased_once(
    store: PostgresDeliveryStore, workspace_id: str
) -> None:
    now = datetime.now(UTC)
    claim = _claim(workspace_id, now)
    await store.claim(claim)
    retry = RetryEntry(b"payload", now, now - timedelta(seconds=1))
    await store.finish(
        Finish(
            claim.message_id,
            workspace_id,
            claim.recipient_hash,
            "deferred",
            "soft_bounce",
            451,
            "greylisted",
            now,
            retry=retry,
        )
    )
    leased = [
        d
        for d in await store.lease_due(now, now + timedelta(minutes=5), 1000)
        if d.message_id == claim.message_id
    ]
    assert [(d.payload, d.first_deferred_at) for d in leased] == [(b"payload", now)]
    again = await store.lease_due(now, now + timedelta(minutes=5), 1000)
    assert claim.message_id not in {d.message_id for d in again}  # leased: hidden from other workers
    first, second = (
        await store.reclaim_deferred(claim.message_id, now),
        await store.reclaim_deferred(claim.message_id, now),
    )
    assert first is not None and first.owned and first.row.attempts == 2
    assert second is not None and not second.owned


async def test_stale_claims_are_swept_as_unconfirmed(store: PostgresDeliveryStore, workspace_id: str) -> None:
    now = datetime.now(UTC)
    old, fresh = _claim(workspace_id, now - timedelta(hours=1)), _claim(workspace_id, now)
    await store.claim(old)
    await store.claim(fresh)
    swept = {r.message_id: r for r in await store.sweep_stale_claims(now - timedelta(minutes=10), now)}
    assert old.message_id in swept and fresh.message_id not in swept
    assert (swept[old.message_id].state, swept[old.message_id].last_reason) == ("failed", "unconfirmed_claim")


async def test_a_sweep_whose_publish_fails_changes_nothing(
    store: PostgresDeliveryStore, workspace_id: str
) -> None:
    now = datetime.now(UTC)
    old = _claim(workspace_id, now - timedelta(hours=1))
    await store.claim(old)

    async def broker_down(rows: list[SendLogRow]) -> None:
        raise ConnectionResetError("broker away")

    with pytest.raises(ConnectionResetError):
        await store.sweep_stale_claims(now - timedelta(minutes=10), now, broker_down)
    assert (await store.known([old.message_id]))[old.message_id].state == "claimed"  # swept again later
    published: list[SendLogRow] = []

    async def publish(rows: list[SendLogRow]) -> None:
        published.extend(rows)

    await store.sweep_stale_claims(now - timedelta(minutes=10), now, publish)
    assert old.message_id in {r.message_id for r in published}
    assert (await store.known([old.message_id]))[old.message_id].state == "failed"


async def test_a_claim_postgresql_refuses_fails_alone_in_its_group(
    store: PostgresDeliveryStore, workspace_id: str
) -> None:
    now = datetime.now(UTC)
    good = [_claim(workspace_id, now) for _ in range(5)]
    bad = replace(_claim(workspace_id, now), profile_id="anon-\x00")
    results = await asyncio.gather(
        *(store.claim(c) for c in (*good[:2], bad, *good[2:])), return_exceptions=True
    )
    assert isinstance(results[2], asyncpg.exceptions.CharacterNotInRepertoireError)
    assert all(isinstance(r, Claim) and r.owned for i, r in enumerate(results) if i != 2)
    assert set(await store.known([c.message_id for c in good])) == {c.message_id for c in good}


async def test_suppressions_are_found_in_one_query_for_workspace_global_and_campaign(
    store: PostgresDeliveryStore, workspace_id: str
) -> None:
    local, global_, free = (email_digest(f"{uuid.uuid4().hex}@example.com") for _ in range(3))
    await store.pool.execute(
        "INSERT INTO suppressions (workspace_id, email_hash, reason, source) VALUES ($1, $2, 'unsubscribed', 't'),"
        " ('*', $3, 'complaint', 't')",
        workspace_id,
        local,
        global_,
    )
    await store.pool.execute(
        "INSERT INTO campaign_unsubscribes (workspace_id, email_hash, campaign, source) VALUES ($1, $2, 'survey', 't')",
        workspace_id,
        free,
    )
    keys = [(workspace_id, h, c) for h in (local, global_, free) for c in ("cart", "survey")]
    found = await store.suppressions(keys)
    await store.pool.execute("DELETE FROM suppressions WHERE workspace_id = '*' AND email_hash = $1", global_)
    await store.pool.execute("DELETE FROM campaign_unsubscribes WHERE workspace_id = $1", workspace_id)
    assert found == {
        (workspace_id, local, "cart"): "unsubscribed",
        (workspace_id, local, "survey"): "unsubscribed",
        (workspace_id, global_, "cart"): "complaint",
        (workspace_id, global_, "survey"): "complaint",
        (workspace_id, free, "survey"): "campaign_unsubscribed",  # only that campaign (migration 004)
    }


async def test_a_finish_after_the_sweep_closed_the_claim_changes_nothing_and_says_so(
    store: PostgresDeliveryStore, workspace_id: str
) -> None:
    then = datetime.now(UTC) - timedelta(hours=1)
    claim = _claim(workspace_id, then)
    await store.claim(claim)
    swept = await store.sweep_stale_claims(datetime.now(UTC) - timedelta(minutes=10), datetime.now(UTC))
    assert claim.message_id in {r.message_id for r in swept}
    late = RetryEntry(b"payload", then, datetime.now(UTC))
    finishes = [
        Finish(claim.message_id, workspace_id, claim.recipient_hash, "sent", "accepted", 250, "ok", then),
        Finish(
            claim.message_id,
            workspace_id,
            claim.recipient_hash,
            "deferred",
            "soft",
            451,
            "x",
            then,
            retry=late,
        ),
    ]
    for finish in finishes:  # the plain UPDATE, and the transaction with a retry row
        assert await store.finish(finish) is False
    row = (await store.known([claim.message_id]))[claim.message_id]
    assert (row.state, row.last_reason) == ("failed", "unconfirmed_claim")
    assert claim.message_id not in {
        d.message_id for d in await store.lease_due(datetime.now(UTC), datetime.now(UTC), 10_000)
    }
    fresh = _claim(workspace_id, datetime.now(UTC))
    await store.claim(fresh)
    ok = Finish(
        fresh.message_id, workspace_id, fresh.recipient_hash, "sent", "accepted", 250, "ok", datetime.now(UTC)
    )
    assert await store.finish(ok) is True


async def test_one_message_id_twice_in_one_group_commit_is_owned_once(
    store: PostgresDeliveryStore, workspace_id: str
) -> None:
    claim = _claim(workspace_id, datetime.now(UTC))
    first, second = await asyncio.gather(store.claim(claim), store.claim(claim))  # one group
    assert sorted([first.owned, second.owned]) == [False, True]  # never two senders on the wire


async def test_a_finish_postgresql_refuses_fails_alone_in_its_group(
    store: PostgresDeliveryStore, workspace_id: str
) -> None:
    now = datetime.now(UTC)
    good, bad = _claim(workspace_id, now), _claim(workspace_id, now)
    await asyncio.gather(store.claim(good), store.claim(bad))

    def finish(c: NewClaim, reply: str) -> Finish:
        return Finish(c.message_id, workspace_id, c.recipient_hash, "sent", "accepted", 250, reply, now)

    results = await asyncio.gather(
        store.finish(finish(good, "ok")), store.finish(finish(bad, "o\x00k")), return_exceptions=True
    )
    assert results[0] is True and isinstance(results[1], asyncpg.exceptions.PostgresError)
    rows = await store.known([good.message_id, bad.message_id])
    assert (rows[good.message_id].state, rows[bad.message_id].state) == ("sent", "claimed")


async def test_a_handed_off_claim_is_published_once_when_final_and_not_before(
    store: PostgresDeliveryStore, workspace_id: str
) -> None:
    """Migration 017: the partition's new owner marks a claim it met; the retry loop publishes the
    row's outcome once it is final (not while claimed), and a publish that fails keeps the mark."""
    now = datetime.now(UTC)
    claim = _claim(workspace_id, now)
    await store.claim(claim)
    await store.hand_off([claim.message_id])
    published: list[SendLogRow] = []

    async def publish(rows: list[SendLogRow]) -> None:
        published.extend(r for r in rows if r.message_id == claim.message_id)

    async def broker_down(rows: list[SendLogRow]) -> None:
        raise ConnectionResetError("broker away")

    await store.publish_handed_off(10_000, publish)
    assert published == []  # still claimed: its claimant (or the stale-claim sweep) decides
    finished = Finish(
        claim.message_id, workspace_id, claim.recipient_hash, "sent", "accepted", 250, "ok", now
    )
    assert await store.finish(finished)
    with pytest.raises(ConnectionResetError):
        await store.publish_handed_off(10_000, broker_down)
    await store.publish_handed_off(10_000, publish)
    await store.publish_handed_off(10_000, publish)
    assert [(r.message_id, r.state) for r in published] == [(claim.message_id, "sent")]


async def test_a_handed_off_claim_the_sweep_closes_is_published_by_the_sweep_alone(
    store: PostgresDeliveryStore, workspace_id: str
) -> None:
    now = datetime.now(UTC)
    claim = _claim(workspace_id, now - timedelta(hours=1))
    await store.claim(claim)
    await store.hand_off([claim.message_id])
    published: list[SendLogRow] = []

    async def publish(rows: list[SendLogRow]) -> None:
        published.extend(r for r in rows if r.message_id == claim.message_id)

    swept = await store.sweep_stale_claims(now - timedelta(minutes=10), now, publish)
    # On the shared database another sender's sweep (every running sender sweeps claims an
    # hour old) may close it first: what matters is that the closed row carries no mark.
    ours = claim.message_id in {r.message_id for r in swept}
    row = await store.pool.fetchrow(
        "SELECT state, handed_off FROM send_log WHERE message_id = $1", claim.message_id
    )
    assert (row["state"], row["handed_off"]) == ("failed", False)
    await store.publish_handed_off(10_000, publish)
    assert [(r.state, r.last_reason) for r in published] == [("failed", "unconfirmed_claim")] * ours


async def test_a_handed_off_claim_its_claimant_deferred_is_not_published_while_deferred(
    store: PostgresDeliveryStore, workspace_id: str
) -> None:
    """Deferred is not final: the retry loop publishes its final outcome, then the hand-off does."""
    now = datetime.now(UTC)
    claim = _claim(workspace_id, now)
    await store.claim(claim)
    await store.hand_off([claim.message_id])
    retry = RetryEntry(b"payload", now, now + timedelta(hours=1))
    deferred = Finish(
        claim.message_id,
        workspace_id,
        claim.recipient_hash,
        "deferred",
        "soft_bounce",
        451,
        "later",
        now,
        retry=retry,
    )
    assert await store.finish(deferred)
    published: list[SendLogRow] = []

    async def publish(rows: list[SendLogRow]) -> None:
        published.extend(r for r in rows if r.message_id == claim.message_id)

    await store.publish_handed_off(10_000, publish)
    assert published == []
    reclaimed = await store.reclaim_deferred(claim.message_id, now)
    assert reclaimed is not None and reclaimed.owned
    await store.publish_handed_off(10_000, publish)
    assert published == []  # claimed again, by the retry loop
    sent = Finish(claim.message_id, workspace_id, claim.recipient_hash, "sent", "accepted", 250, "ok", now)
    assert await store.finish(sent)
    await store.publish_handed_off(10_000, publish)
    assert [(r.state, r.attempts) for r in published] == [("sent", 2)]


async def test_two_retry_loops_publish_a_handed_off_outcome_once_and_neither_waits(
    store: PostgresDeliveryStore, sender_settings: SenderSettings, workspace_id: str
) -> None:
    """Two senders' retry loops at once: the one publishing holds the row (its broker slow);
    the other skips it at once (SKIP LOCKED) rather than waiting, and never publishes it too."""
    other = PostgresDeliveryStore(sender_settings)
    await other.start()
    try:
        now = datetime.now(UTC)
        claim = _claim(workspace_id, now)
        await store.claim(claim)
        await store.hand_off([claim.message_id])
        sent = Finish(
            claim.message_id, workspace_id, claim.recipient_hash, "sent", "accepted", 250, "ok", now
        )
        assert await store.finish(sent)
        inside, release = asyncio.Event(), asyncio.Event()
        first: list[str] = []
        second: list[str] = []

        async def slow_broker(rows: list[SendLogRow]) -> None:
            first.extend(r.message_id for r in rows if r.message_id == claim.message_id)
            inside.set()
            await release.wait()

        async def publish(rows: list[SendLogRow]) -> None:
            second.extend(r.message_id for r in rows if r.message_id == claim.message_id)

        publishing = asyncio.ensure_future(store.publish_handed_off(10_000, slow_broker))
        await asyncio.wait_for(inside.wait(), 10)
        await asyncio.wait_for(other.publish_handed_off(10_000, publish), 5)  # not blocked behind it
        release.set()
        await publishing
        await other.publish_handed_off(10_000, publish)
        assert (first, second) == ([claim.message_id], [])
    finally:
        await other.close()


async def test_a_hand_off_never_deadlocks_with_a_writer_locking_the_same_claims_in_another_order(
    store: PostgresDeliveryStore, workspace_id: str
) -> None:
    """The new owner hands off two claims while their claimant's group commit (FINISH, rows in
    its own order) records both. One UPDATE of both rows held the first row's lock while it
    waited for the second: PostgreSQL found a deadlock and aborted one side; an aborted FINISH
    leaves a message the relay accepted 'claimed', to be swept as failed/unconfirmed. (A stress
    of FINISH in reverse order against HAND_OFF, 50 rows, hit 4 deadlocks in 300 rounds.) Here
    the orders are forced: a third transaction holds X, the hand-off queues on X, the other
    writer takes Y and then queues on X behind it."""
    now = datetime.now(UTC)
    x, y = _claim(workspace_id, now), _claim(workspace_id, now)
    await store.claim(x)
    await store.claim(y)
    blocker = await asyncpg.connect(store.settings.database_url)
    writer = await asyncpg.connect(store.settings.database_url)
    try:
        blocking = blocker.transaction()
        await blocking.start()
        await blocker.execute("SELECT 1 FROM send_log WHERE message_id = $1 FOR UPDATE", x.message_id)
        handing = asyncio.ensure_future(store.hand_off([x.message_id, y.message_id]))
        await asyncio.sleep(0.3)  # queued on X
        writing = writer.transaction()
        await writing.start()
        await writer.execute("SELECT 1 FROM send_log WHERE message_id = $1 FOR UPDATE", y.message_id)
        other = asyncio.ensure_future(
            writer.execute("SELECT 1 FROM send_log WHERE message_id = $1 FOR UPDATE", x.message_id)
        )
        await asyncio.sleep(0.3)  # queued on X behind the hand-off
        await blocking.commit()
        results = await asyncio.wait_for(
            asyncio.gather(other, _commit_after(other, writing), handing, return_exceptions=True), 20
        )
        assert not [r for r in results if isinstance(r, BaseException)], results
        marked = await store.pool.fetch(
            "SELECT message_id FROM send_log WHERE message_id = ANY($1::text[]) AND handed_off",
            [x.message_id, y.message_id],
        )
        assert len(marked) == 2
    finally:
        await blocker.close()
        await writer.close()


async def _commit_after(locked: asyncio.Future[object], transaction: asyncpg.transaction.Transaction) -> None:
    await locked  # the writer has both rows now
    await transaction.commit()
