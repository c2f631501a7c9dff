"""The outbound handler with fakes: what is sent, what is refused, what is published."""

from __future__ import annotations

from prometheus_client import REGISTRY

from retarget.common.identity import email_digest
from retarget.common.schemas import DeliveryRecorded, OutboundMessage
from retarget.common.stage import Output
from retarget.common.topics import profile_key
from retarget.sender.store import NewClaim
from retarget.sender.testing import SenderParts, decode_delivery, outbound, record_of
from retarget.sender.transport import SmtpReply


def _deliveries(parts: SenderParts, outputs: list[Output]) -> list[DeliveryRecorded]:
    return [decode_delivery(o.value) for o in outputs if o.topic == parts.topics.deliveries]


async def test_a_message_is_sent_and_its_outcome_keyed_by_profile(parts: SenderParts) -> None:
    message = outbound(workspace_id="ws9", profile_id="p7")
    outputs = await parts.handler([record_of(message)])
    assert [e.recipient for e in parts.transport.delivered] == [message.recipient]
    [out] = outputs
    assert out.topic == "t.deliveries.v1" and out.key == profile_key("ws9", "p7")
    delivery = decode_delivery(out.value)
    assert (delivery.message_id, delivery.outcome, delivery.smtp_code, delivery.attempt) == (
        message.message_id,
        "sent",
        250,
        1,
    )
    assert parts.store.rows[message.message_id].state == "sent"


async def test_a_redelivered_message_is_not_sent_again_and_replays_the_same_outcome(
    parts: SenderParts,
) -> None:
    message = outbound()
    first = await parts.handler([record_of(message)])
    parts.clock.advance(minutes=5)
    again = await parts.handler([record_of(message)])
    assert len(parts.transport.attempts) == 1
    assert [o.value for o in again] == [o.value for o in first]  # byte-identical: consumers dedupe


async def test_the_same_message_twice_in_one_batch_is_sent_once(parts: SenderParts) -> None:
    message = outbound()
    outputs = await parts.handler([record_of(message), record_of(message)])
    assert len(parts.transport.attempts) == 1 and len(outputs) == 1


async def test_suppressed_recipients_get_nothing_in_one_query_per_batch(parts: SenderParts) -> None:
    local, global_, free = outbound(), outbound(), outbound()
    parts.store.suppressed[("ws1", email_digest(local.recipient))] = "unsubscribed"
    parts.store.suppressed[("*", email_digest(global_.recipient.upper()))] = "complaint"
    outputs = await parts.handler([record_of(m) for m in (local, global_, free)])
    assert [e.recipient for e in parts.transport.attempts] == [free.recipient]
    assert parts.store.suppression_queries == 1
    outcomes = {d.message_id: (d.outcome, d.reason, d.attempt) for d in _deliveries(parts, outputs)}
    assert outcomes[local.message_id] == ("suppressed", "unsubscribed", 0)
    assert outcomes[global_.message_id] == ("suppressed", "complaint", 0)
    assert outcomes[free.message_id][0] == "sent"


async def test_another_workspaces_suppression_does_not_apply(parts: SenderParts) -> None:
    message = outbound()
    parts.store.suppressed[("other", email_digest(message.recipient))] = "unsubscribed"
    await parts.handler([record_of(message)])
    assert len(parts.transport.delivered) == 1


async def test_a_hard_bounce_suppresses_the_recipient_for_the_next_message(parts: SenderParts) -> None:
    first = outbound(recipient="gone@example.com")
    parts.transport.script("gone@example.com", SmtpReply(550, "5.1.1 no such user", "rcpt"))
    [out] = await parts.handler([record_of(first)])
    assert (decode_delivery(out.value).outcome, decode_delivery(out.value).reason) == (
        "bounced",
        "hard_bounce",
    )
    assert parts.store.suppressed[("ws1", email_digest("gone@example.com"))] == "hard_bounce"
    second = outbound(recipient="gone@example.com")
    [out] = await parts.handler([record_of(second)])
    assert decode_delivery(out.value).outcome == "suppressed"
    assert len(parts.transport.attempts) == 1


async def test_a_soft_bounce_is_deferred_with_a_retry_entry(parts: SenderParts) -> None:
    message = outbound()
    parts.transport.script(message.recipient, SmtpReply(451, "4.7.1 greylisted", "rcpt"))
    [out] = await parts.handler([record_of(message)])
    delivery = decode_delivery(out.value)
    assert (delivery.outcome, delivery.reason, delivery.smtp_code) == ("deferred", "soft_bounce", 451)
    retry = parts.store.retries[message.message_id]
    assert (retry.not_before - parts.clock.now()).total_seconds() == 60


async def test_an_undecodable_record_is_dead_lettered_and_the_batch_goes_on(parts: SenderParts) -> None:
    good = outbound()
    bad_address = outbound(recipient="not-an-address")
    outputs = await parts.handler([record_of(b"{not json"), record_of(bad_address), record_of(good)])
    dead = [o for o in outputs if o.topic == parts.topics.dead_letter]
    assert len(dead) == 2
    assert b"undecodable" in dead[0].value and b"not an email address" in dead[1].value
    assert [d.message_id for d in _deliveries(parts, outputs)] == [good.message_id]


async def test_a_message_found_claimed_is_neither_sent_nor_reported(parts: SenderParts) -> None:
    message = outbound()
    await parts.store.claim(_claim_of(message, parts))  # a process claimed it, then died
    before = REGISTRY.get_sample_value("retarget_sender_found_claimed_total") or 0
    assert await parts.handler([record_of(message)]) == []
    assert parts.transport.attempts == []
    assert REGISTRY.get_sample_value("retarget_sender_found_claimed_total") == before + 1


def _claim_of(message: OutboundMessage, parts: SenderParts) -> NewClaim:
    recipient_hash = email_digest(message.recipient)
    return NewClaim(
        message.message_id,
        message.workspace_id,
        message.campaign,
        message.profile_id,
        recipient_hash,
        "claimed",
        None,
        parts.clock.now(),
    )


async def test_delivery_outcomes_are_counted_by_named_recipient_domain_and_other(parts: SenderParts) -> None:
    def counted(domain: str, outcome: str) -> float:
        labels = {"domain": domain, "outcome": outcome}
        return REGISTRY.get_sample_value("retarget_sender_domain_outcomes_total", labels) or 0.0

    before = {
        key: counted(*key) for key in [("gmail.com", "sent"), ("gmail.com", "bounced"), ("other", "sent")]
    }
    refused = outbound("gone@GMail.com")
    parts.transport.script(refused.recipient, SmtpReply(550, "no such user", "rcpt"))
    messages = [outbound("ann@gmail.com"), outbound("bob@shop-customers.example"), refused]
    await parts.handler([record_of(m) for m in messages])
    assert counted("gmail.com", "sent") == before[("gmail.com", "sent")] + 1
    assert counted("gmail.com", "bounced") == before[("gmail.com", "bounced")] + 1
    assert counted("other", "sent") == before[("other", "sent")] + 1  # never one label per domain
    assert counted("shop-customers.example", "sent") == 0
