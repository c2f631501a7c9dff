"""The retry loop with fakes and a fake clock: backoff, expiry, late suppressions, dead claims."""

from __future__ import annotations

from retarget.common.identity import email_digest
from retarget.common.schemas import DeliveryRecorded
from retarget.sender.store import NewClaim
from retarget.sender.testing import SenderParts, decode_delivery, outbound, record_of
from retarget.sender.transport import SmtpReply

SOFT = SmtpReply(451, "try later", "rcpt")
DROPPED = SmtpReply(None, "connection lost", "data")


def _published(parts: SenderParts) -> list[DeliveryRecorded]:
    return [decode_delivery(r.value) for r in parts.publisher.on(parts.topics.deliveries)]


async def test_a_deferred_message_is_retried_when_due_and_then_sent(parts: SenderParts) -> None:
    message = outbound()
    parts.transport.script(message.recipient, SOFT)
    await parts.handler([record_of(message)])
    assert await parts.retry.tick() == 0  # not due yet
    parts.clock.advance(seconds=61)
    assert await parts.retry.tick() == 1
    [delivery] = _published(parts)
    assert (delivery.outcome, delivery.attempt) == ("sent", 2)
    assert len(parts.transport.delivered) == 1 and parts.store.retries == {}
    assert await parts.retry.tick() == 0  # nothing left


async def test_backoff_doubles_and_gives_up_after_max_attempts(parts: SenderParts) -> None:
    message = outbound()
    parts.transport.script(message.recipient, DROPPED, SOFT, SOFT, SOFT, SOFT)
    await parts.handler([record_of(message)])
    waits = []
    while message.message_id in parts.store.retries:
        retry = parts.store.retries[message.message_id]
        waits.append((retry.not_before - parts.clock.now()).total_seconds())
        parts.clock.advance(seconds=waits[-1])
        await parts.retry.tick()
    assert waits == [60, 120, 240]
    outcomes = [(d.outcome, d.reason, d.attempt) for d in _published(parts)]
    assert outcomes == [
        ("deferred", "soft_bounce", 2),
        ("deferred", "soft_bounce", 3),
        ("expired", "max_attempts", 4),
    ]
    assert parts.transport.delivered == []


async def test_an_unsubscribe_during_the_wait_stops_the_retry(parts: SenderParts) -> None:
    message = outbound()
    parts.transport.script(message.recipient, SOFT)
    await parts.handler([record_of(message)])
    parts.store.suppressed[("ws1", email_digest(message.recipient))] = "unsubscribed"
    parts.clock.advance(minutes=2)
    await parts.retry.tick()
    assert [(d.outcome, d.reason) for d in _published(parts)] == [("suppressed", "unsubscribed")]
    assert len(parts.transport.attempts) == 1 and parts.store.retries == {}


async def test_a_claim_left_by_a_dead_process_is_closed_as_unconfirmed_after_the_lease(
    parts: SenderParts,
) -> None:
    message = outbound()
    await parts.store.claim(
        NewClaim(
            message.message_id,
            "ws1",
            "cart",
            "p1",
            email_digest(message.recipient),
            "claimed",
            None,
            parts.clock.now(),
        )
    )
    parts.clock.advance(seconds=299)
    assert await parts.retry.tick() == 0
    parts.clock.advance(seconds=2)
    assert await parts.retry.tick() == 1
    [delivery] = _published(parts)
    assert (delivery.outcome, delivery.reason) == ("failed", "unconfirmed_claim")
    assert await parts.handler([record_of(message)]) != []  # a replay now reports failed, sends nothing
    assert parts.transport.attempts == []
