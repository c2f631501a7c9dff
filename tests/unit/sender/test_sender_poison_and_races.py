"""The sender's guards that only a race or a poison record reaches, with fakes."""

from __future__ import annotations

import asyncio
from collections.abc import Sequence

import asyncpg
import pytest
from prometheus_client import REGISTRY

from retarget.common.identity import email_digest
from retarget.common.poison import is_data_error
from retarget.common.schemas import DeadLettered, OutboundMessage, decoder
from retarget.sender.group_commit import GroupCommit
from retarget.sender.store import Claim, Finish, NewClaim, RetryEntry, SendLogRow
from retarget.sender.testing import SenderParts, _Retry, decode_delivery, outbound, record_of
from retarget.sender.transport import Envelope, SmtpReply

_dead = decoder(DeadLettered)


async def test_a_claim_someone_else_made_after_the_lookup_is_not_delivered(parts: SenderParts) -> None:
    """Another sender (the partition's previous owner mid-rebalance) claims between our
    `known` look-up and our claim: the claim is not ours, so we must not talk SMTP."""
    message = outbound()
    theirs = SendLogRow(message.message_id, "ws1", "cart", "p1", "claimed", 1, None, None, parts.clock.now())

    async def claim_raced(claim: NewClaim) -> Claim:
        parts.store.rows[claim.message_id] = theirs  # they inserted first
        return Claim(owned=False, row=theirs)

    parts.store.claim = claim_raced  # type: ignore[method-assign]
    outputs = await parts.handler([record_of(message)])
    assert parts.transport.attempts == []  # never a second sender on the wire
    assert outputs == []  # still claimed by them: they publish the outcome
    assert parts.store.handed_off == {message.message_id}  # ...or, should they die, our retry loop


async def test_a_lost_race_to_a_finished_message_replays_its_outcome(parts: SenderParts) -> None:
    message = outbound()
    sent = SendLogRow(message.message_id, "ws1", "cart", "p1", "sent", 1, 250, "accepted", parts.clock.now())

    async def claim_raced(claim: NewClaim) -> Claim:
        return Claim(owned=False, row=sent)

    parts.store.claim = claim_raced  # type: ignore[method-assign]
    [out] = await parts.handler([record_of(message)])
    assert parts.transport.attempts == []
    assert (decode_delivery(out.value).outcome, decode_delivery(out.value).smtp_code) == ("sent", 250)


async def test_a_message_whose_claim_the_database_refuses_is_dead_lettered_alone(parts: SenderParts) -> None:
    bad, good = outbound(profile_id="p\x00nul"), outbound()
    claim = parts.store.claim

    async def refuse_nul(new: NewClaim) -> Claim:
        if "\x00" in new.profile_id:
            raise asyncpg.exceptions.CharacterNotInRepertoireError(
                'invalid byte sequence for encoding "UTF8": 0x00'
            )
        return await claim(new)

    parts.store.claim = refuse_nul  # type: ignore[method-assign]
    outputs = await parts.handler([record_of(bad), record_of(good)])
    [letter] = [_dead.decode(o.value) for o in outputs if o.topic == parts.topics.dead_letter]
    assert letter.reason.startswith("CharacterNotInRepertoireError") and letter.stage == "sender"
    [delivery] = [decode_delivery(o.value) for o in outputs if o.topic == parts.topics.deliveries]
    assert (delivery.message_id, delivery.outcome) == (good.message_id, "sent")
    assert [e.recipient for e in parts.transport.delivered] == [good.recipient]


async def test_a_transient_database_error_fails_the_batch(parts: SenderParts) -> None:
    async def away(new: NewClaim) -> Claim:
        raise ConnectionRefusedError("database away")

    parts.store.claim = away  # type: ignore[method-assign]
    with pytest.raises(ConnectionRefusedError):  # the Stage retries the batch; nothing dead-lettered
        await parts.handler([record_of(outbound())])


def test_data_errors_are_told_from_transient_ones_by_class() -> None:
    assert is_data_error(asyncpg.exceptions.CharacterNotInRepertoireError("0x00"))
    assert is_data_error(asyncpg.exceptions.ProgramLimitExceededError("index row requires 10016 bytes"))
    assert is_data_error(asyncpg.exceptions.NotNullViolationError("null"))
    assert is_data_error(UnicodeDecodeError("utf-8", b"\xff", 0, 1, "bad"))
    assert not is_data_error(asyncpg.exceptions.ForeignKeyViolationError("race"))
    assert not is_data_error(asyncpg.exceptions.CannotConnectNowError("starting"))
    assert not is_data_error(ConnectionResetError())
    assert not is_data_error(TimeoutError())


async def test_a_group_with_one_bad_row_fails_only_that_row() -> None:
    flushed: list[list[str]] = []

    async def flush(items: list[str]) -> list[str]:
        flushed.append(items)
        if "bad" in items:
            raise asyncpg.exceptions.ProgramLimitExceededError("index row requires 10016 bytes")
        return [i.upper() for i in items]

    group: GroupCommit[str, str] = GroupCommit(flush, isolate=is_data_error)
    results = await asyncio.gather(*(group.submit(i) for i in ("a", "bad", "c")), return_exceptions=True)
    assert results[0] == "A" and results[2] == "C"
    assert isinstance(results[1], asyncpg.exceptions.ProgramLimitExceededError)
    assert flushed[0] == ["a", "bad", "c"]  # one statement first; row by row only after the failure


async def test_a_transient_group_failure_fails_every_caller_without_retrying_rows() -> None:
    calls: list[Sequence[str]] = []

    async def flush(items: list[str]) -> list[str]:
        calls.append(items)
        raise ConnectionResetError

    group: GroupCommit[str, str] = GroupCommit(flush, isolate=is_data_error)
    results = await asyncio.gather(*(group.submit(i) for i in ("a", "b")), return_exceptions=True)
    assert all(isinstance(r, ConnectionResetError) for r in results) and len(calls) == 1


async def test_a_stale_claim_is_published_before_it_is_closed(parts: SenderParts) -> None:
    """A crash (here: the broker refusing) between the sweep's mark and its publish lost the
    outcome for good; now the row stays claimed until the outcome is acknowledged."""
    message = outbound()
    await _claim_as_another_process(parts, message)
    parts.clock.advance(minutes=10)
    publish = parts.publisher.publish

    async def broker_down(topic: str, value: bytes, key: bytes | None = None) -> None:
        raise ConnectionResetError

    parts.publisher.publish = broker_down  # type: ignore[method-assign]
    with pytest.raises(ConnectionResetError):
        await parts.retry.tick()
    assert parts.store.rows[message.message_id].state == "claimed"  # not closed: swept again
    parts.publisher.publish = publish  # type: ignore[method-assign]
    assert await parts.retry.tick() == 1
    [out] = parts.publisher.on(parts.topics.deliveries)
    assert (decode_delivery(out.value).outcome, decode_delivery(out.value).reason) == (
        "failed",
        "unconfirmed_claim",
    )
    assert parts.store.rows[message.message_id].state == "failed"


async def test_a_retry_that_fails_on_its_data_is_dead_lettered_and_dropped(parts: SenderParts) -> None:
    message = outbound()
    parts.store.retries[message.message_id] = _due_retry(parts, record_of(message).value)
    parts.store.rows[message.message_id] = SendLogRow(
        message.message_id, "ws1", "cart", "p1", "deferred", 1, 451, "x", parts.clock.now()
    )
    parts.store.claimed_at[message.message_id] = parts.clock.now()

    async def refuse(message_id: str, at: object) -> Claim | None:
        raise asyncpg.exceptions.CharacterNotInRepertoireError("0x00")

    parts.store.reclaim_deferred = refuse  # type: ignore[method-assign]
    parts.clock.advance(minutes=1)
    counted = REGISTRY.get_sample_value("retarget_dead_letters_total", {"stage": "sender-retry"})
    assert counted is not None  # the series exists from the start: an alert sees the first one
    await parts.retry.tick()
    [letter] = [_dead.decode(r.value) for r in parts.publisher.on(parts.topics.dead_letter)]
    assert letter.stage == "sender-retry" and "CharacterNotInRepertoireError" in letter.reason
    assert REGISTRY.get_sample_value("retarget_dead_letters_total", {"stage": "sender-retry"}) == counted + 1
    assert message.message_id not in parts.store.retries  # not leased again for ever


def _due_retry(parts: SenderParts, payload: bytes) -> _Retry:
    return _Retry(payload, parts.clock.now(), parts.clock.now())


async def test_a_nul_byte_in_the_mx_reply_does_not_lose_the_outcome_of_a_sent_message(
    parts: SenderParts,
) -> None:
    """The recipient's MX (anyone's, for their own domain) answers 250 with a NUL byte in the
    text: the mail is sent, so its outcome must be recorded as sent — not refused by the send
    log, left claimed, dead-lettered and later swept as failed/unconfirmed."""
    message = outbound()
    parts.transport.script(message.recipient, SmtpReply(250, "2.0.0 queued\x00as 1", "done"))
    finish = parts.store.finish

    async def refuse_nul(f: Finish) -> None:
        if "\x00" in f.reply_text:
            raise asyncpg.exceptions.CharacterNotInRepertoireError(
                'invalid byte sequence for encoding "UTF8": 0x00'
            )
        await finish(f)

    parts.store.finish = refuse_nul  # type: ignore[method-assign]
    outputs = await parts.handler([record_of(message)])
    assert [o.topic for o in outputs] == [parts.topics.deliveries]
    assert decode_delivery(outputs[0].value).outcome == "sent"
    assert parts.store.rows[message.message_id].state == "sent"


async def test_a_flush_cancelled_under_its_callers_fails_them_instead_of_stranding_them() -> None:
    started = asyncio.Event()

    async def flush(items: list[str]) -> list[str]:
        started.set()
        await asyncio.sleep(3600)  # the database hangs; the loop is shutting down
        return items

    group: GroupCommit[str, str] = GroupCommit(flush, isolate=is_data_error)
    caller = asyncio.ensure_future(group.submit("a"))
    await started.wait()
    assert group._drain is not None
    group._drain.cancel()
    done, _ = await asyncio.wait({caller}, timeout=2)
    assert done, "the caller of a cancelled flush waits for ever"
    assert caller.cancelled()


async def test_a_refusal_that_loses_the_race_to_a_claim_publishes_nothing(parts: SenderParts) -> None:
    """Suppressed here, but another sender claimed the id between our look-up and our claim:
    the row is theirs and still 'claimed' — no outcome of ours (there is none yet) is sent."""
    message = outbound()
    parts.store.suppressed[("ws1", email_digest(message.recipient))] = "unsubscribed"
    theirs = SendLogRow(message.message_id, "ws1", "cart", "p1", "claimed", 1, None, None, parts.clock.now())

    async def claim_raced(claim: NewClaim) -> Claim:
        return Claim(owned=False, row=theirs)

    parts.store.claim = claim_raced  # type: ignore[method-assign]
    assert await parts.handler([record_of(message)]) == []
    assert parts.transport.attempts == []


@pytest.mark.parametrize("state", ["claimed", "sent"])
async def test_a_retry_whose_row_another_sender_holds_or_finished_is_not_delivered(
    parts: SenderParts, state: str
) -> None:
    """A crash between a retry's publish and its drop (or another sender's lease after ours
    expired) leaves the retry row while the send-log row is claimed or finished: the next
    lease must replay, never talk SMTP again."""
    message = outbound()
    parts.store.retries[message.message_id] = _due_retry(parts, record_of(message).value)
    parts.store.rows[message.message_id] = SendLogRow(
        message.message_id,
        "ws1",
        "cart",
        "p1",
        state,
        2,
        250 if state == "sent" else None,
        None,
        parts.clock.now(),
    )
    parts.store.claimed_at[message.message_id] = parts.clock.now()
    parts.clock.advance(seconds=1)
    await parts.retry.tick()
    assert parts.transport.attempts == []


async def test_a_retry_keeps_its_row_until_its_outcome_is_published(parts: SenderParts) -> None:
    """The broker refuses (as a crash would cut) between a retry's outcome and its publish:
    the retry row stays, so the next lease replays the recorded outcome instead of losing it."""
    message = outbound()
    parts.transport.script(message.recipient, SmtpReply(451, "later", "rcpt"))
    await parts.handler([record_of(message)])
    parts.clock.advance(minutes=2)
    publish = parts.publisher.publish

    async def broker_down(topic: str, value: bytes, key: bytes | None = None) -> None:
        raise ConnectionResetError

    parts.publisher.publish = broker_down  # type: ignore[method-assign]
    with pytest.raises(ConnectionResetError):
        await parts.retry.tick()
    assert message.message_id in parts.store.retries  # not dropped: its outcome is unpublished
    parts.publisher.publish = publish  # type: ignore[method-assign]
    parts.clock.advance(minutes=20)  # past the lease
    await parts.retry.tick()
    outcomes = [decode_delivery(r.value).outcome for r in parts.publisher.on(parts.topics.deliveries)]
    assert outcomes == ["sent"] and len(parts.transport.delivered) == 1


async def test_a_poison_retry_keeps_its_row_until_its_dead_letter_is_published(parts: SenderParts) -> None:
    message = outbound()
    parts.store.retries[message.message_id] = _due_retry(parts, record_of(message).value)
    parts.store.rows[message.message_id] = SendLogRow(
        message.message_id, "ws1", "cart", "p1", "deferred", 1, 451, "x", parts.clock.now()
    )

    async def refuse(message_id: str, at: object) -> Claim | None:
        raise asyncpg.exceptions.CharacterNotInRepertoireError("0x00")

    async def broker_down(topic: str, value: bytes, key: bytes | None = None) -> None:
        raise ConnectionResetError

    parts.store.reclaim_deferred = refuse  # type: ignore[method-assign]
    parts.publisher.publish = broker_down  # type: ignore[method-assign]
    parts.clock.advance(minutes=1)
    with pytest.raises(ConnectionResetError):
        await parts.retry.tick()
    assert message.message_id in parts.store.retries  # the dead letter is not out: keep the row


async def test_a_delivery_that_outlives_its_claim_lease_does_not_publish_a_second_outcome(
    parts: SenderParts,
) -> None:
    """The relay takes longer than the claim lease; another sender's sweep closes the claim
    as failed/unconfirmed and publishes that. Our 250 then arrives: the send log keeps the
    sweep's outcome, so we must publish that one too — not 'sent' as a second, different one."""
    message = outbound()
    release, talking = asyncio.Event(), asyncio.Event()
    deliver = parts.transport.deliver

    async def slow_relay(envelope: Envelope) -> SmtpReply:
        talking.set()
        await release.wait()
        return await deliver(envelope)

    parts.transport.deliver = slow_relay  # type: ignore[method-assign]
    handling = asyncio.ensure_future(parts.handler([record_of(message)]))
    await talking.wait()
    parts.clock.advance(minutes=10)  # past the claim lease of 300 s
    await parts.retry.tick()
    [swept] = [decode_delivery(r.value) for r in parts.publisher.on(parts.topics.deliveries)]
    release.set()
    [out] = await handling
    ours = decode_delivery(out.value)
    assert (ours.outcome, ours.reason) == (swept.outcome, swept.reason) == ("failed", "unconfirmed_claim")


async def _claim_as_another_process(parts: SenderParts, message: OutboundMessage) -> None:
    """The row another sender's claim leaves: 'claimed', mid-SMTP as far as we can tell."""
    await parts.store.claim(
        NewClaim(message.message_id, "ws1", "cart", "p1", b"h", "claimed", None, parts.clock.now())
    )


def _sent(parts: SenderParts, message: OutboundMessage) -> Finish:
    """That claimant's outcome: the relay's 250."""
    return Finish(
        message.message_id,
        "ws1",
        email_digest(message.recipient),
        "sent",
        "accepted",
        250,
        "ok",
        parts.clock.now(),
    )


async def test_a_claim_finished_by_an_owner_that_died_before_publishing_still_gets_an_outcome(
    parts: SenderParts,
) -> None:
    """The partition's new owner commits past a message another process claimed; that process
    records 'sent' and dies before producing it. The hand-off mark lets the retry loop publish."""
    message = outbound()
    # the partition's previous owner claimed it and is mid-SMTP when a rebalance moves the partition
    await _claim_as_another_process(parts, message)
    outputs = await parts.handler([record_of(message)])  # the new owner: claimed → skipped, committed
    assert outputs == []
    # the previous owner gets its 250 and records it, then is killed before producing its batch
    assert await parts.store.finish(_sent(parts, message))
    parts.clock.advance(seconds=3600)  # well past the claim lease: the sweep has run
    await parts.retry.tick()
    published = [decode_delivery(r.value) for r in parts.publisher.on(parts.topics.deliveries)]
    assert [(d.message_id, d.outcome) for d in published] == [(message.message_id, "sent")]


async def test_a_refusal_that_meets_a_claim_someone_else_made_hands_it_off(parts: SenderParts) -> None:
    """Admission refuses (suppressed) a message the previous owner claimed after our look-up:
    our refusal's claim is not ours either, and the claim is handed off like one met in `known`."""
    message = outbound()
    parts.store.suppressed[("ws1", email_digest(message.recipient))] = "manual"
    theirs = SendLogRow(message.message_id, "ws1", "cart", "p1", "claimed", 1, None, None, parts.clock.now())

    async def claim_raced(claim: NewClaim) -> Claim:
        parts.store.rows[claim.message_id] = theirs
        return Claim(owned=False, row=theirs)

    parts.store.claim = claim_raced  # type: ignore[method-assign]
    assert await parts.handler([record_of(message)]) == []
    assert parts.store.handed_off == {message.message_id}


async def test_a_batch_that_meets_no_claim_adds_no_hand_off_query(parts: SenderParts) -> None:
    """The hand-off costs a statement only when a claim is met: fresh messages and replays of
    finished ones (the hot path) run none; a batch that meets claims runs exactly one."""
    calls: list[list[str]] = []
    hand_off = parts.store.hand_off

    async def counting(message_ids: Sequence[str]) -> None:
        calls.append(list(message_ids))
        await hand_off(message_ids)

    parts.store.hand_off = counting  # type: ignore[method-assign]
    fresh = [outbound() for _ in range(3)]
    await parts.handler([record_of(m) for m in fresh])
    await parts.handler([record_of(m) for m in fresh])  # replays of finished messages
    assert calls == []
    claimed = [outbound() for _ in range(2)]
    for m in claimed:
        await parts.store.claim(
            NewClaim(m.message_id, "ws1", "cart", "p1", b"h", "claimed", None, parts.clock.now())
        )
    await parts.handler([record_of(m) for m in [*claimed, outbound()]])
    assert calls == [[m.message_id for m in claimed]]


async def test_a_handed_off_claim_the_sweep_closes_is_published_once(parts: SenderParts) -> None:
    """The claimant died mid-SMTP: the sweep publishes failed/unconfirmed and clears the mark,
    so later polls do not publish it again."""
    message = outbound()
    await _claim_as_another_process(parts, message)
    assert await parts.handler([record_of(message)]) == []
    parts.clock.advance(seconds=3600)
    await parts.retry.tick()
    await parts.retry.tick()
    published = [decode_delivery(r.value) for r in parts.publisher.on(parts.topics.deliveries)]
    assert [(d.outcome, d.reason) for d in published] == [("failed", "unconfirmed_claim")]
    assert parts.store.handed_off == set()


async def test_a_handed_off_claim_is_published_once_over_several_polls(parts: SenderParts) -> None:
    message = outbound()
    await _claim_as_another_process(parts, message)
    await parts.handler([record_of(message)])
    assert await parts.store.finish(_sent(parts, message))
    for _ in range(3):
        await parts.retry.tick()
    assert [decode_delivery(r.value).outcome for r in parts.publisher.on(parts.topics.deliveries)] == ["sent"]


async def test_a_handed_off_claim_its_claimant_deferred_is_published_when_final_and_identically(
    parts: SenderParts,
) -> None:
    """The claimant got a 4xx and deferred the message (publishing 'deferred' itself): the
    hand-off publishes nothing while it is deferred; the retry loop's final 'sent' is published
    by the retry and once more for the hand-off, byte for byte the same record."""
    message = outbound()
    now = parts.clock.now()
    await parts.store.claim(NewClaim(message.message_id, "ws1", "cart", "p1", b"h", "claimed", None, now))
    assert await parts.handler([record_of(message)]) == []  # the new owner meets the claim
    retry = RetryEntry(record_of(message).value, now, now)
    deferred = Finish(
        message.message_id,
        "ws1",
        email_digest(message.recipient),
        "deferred",
        "soft_bounce",
        451,
        "later",
        now,
        retry=retry,
    )
    assert await parts.store.finish(deferred)
    await parts.retry.tick()  # due at once: delivered by the retry loop (after this poll's hand-off step)
    await parts.retry.tick()
    await parts.retry.tick()
    out = [r.value for r in parts.publisher.on(parts.topics.deliveries)]
    assert [(decode_delivery(v).outcome, decode_delivery(v).attempt) for v in out] == [
        ("sent", 2),
        ("sent", 2),
    ]
    assert out[0] == out[1]
    assert len(parts.transport.delivered) == 1
