"""A paused workspace's mail is held, never sent, dropped or bounced: admitted into the retry
queue as `deferred`/`paused`, and a retry that falls due while paused is postponed without an
attempt. Once the pause is lifted it is sent, once (real handler and retry loop, fakes below)."""

from __future__ import annotations

from retarget.common.schemas import DeliveryRecorded
from retarget.sender.testing import FakeHold, SenderParts, decode_delivery, fake_sender, outbound, record_of
from retarget.sender.transport import SmtpReply

SOFT = SmtpReply(451, "try later", "rcpt")


def _published(parts: SenderParts) -> list[DeliveryRecorded]:
    return [decode_delivery(r.value) for r in parts.publisher.on(parts.topics.deliveries)]


async def test_a_paused_workspaces_message_is_held_and_another_workspaces_is_sent() -> None:
    hold = FakeHold({"w-paused"})
    parts = fake_sender(hold=hold)
    held, other = outbound(workspace_id="w-paused"), outbound(workspace_id="w-fine")
    outputs = await parts.handler([record_of(held), record_of(other)])
    outcomes = {d.message_id: (d.outcome, d.reason) for d in map(lambda o: decode_delivery(o.value), outputs)}
    assert outcomes == {held.message_id: ("deferred", "paused"), other.message_id: ("sent", "accepted")}
    assert [e.recipient for e in parts.transport.delivered] == [other.recipient]
    assert held.message_id in parts.store.retries

    parts.clock.advance(seconds=301)  # due again, still paused: postponed, no attempt used
    assert await parts.retry.tick() == 0
    assert len(parts.transport.delivered) == 1
    assert parts.store.rows[held.message_id].attempts == 0

    hold.paused.clear()  # resumed
    parts.clock.advance(seconds=301)
    assert await parts.retry.tick() == 1
    assert [(d.outcome, d.attempt) for d in _published(parts)] == [("sent", 1)]
    assert [e.recipient for e in parts.transport.delivered] == [other.recipient, held.recipient]
    parts.clock.advance(seconds=3600)
    assert await parts.retry.tick() == 0  # sent once


async def test_a_retry_of_a_workspace_paused_meanwhile_waits_without_an_attempt() -> None:
    hold = FakeHold()
    parts = fake_sender(hold=hold)
    message = outbound(workspace_id="w-1")
    parts.transport.script(message.recipient, SOFT)
    await parts.handler([record_of(message)])  # deferred by the relay, before any pause
    hold.paused.add("w-1")
    parts.clock.advance(seconds=61)
    assert await parts.retry.tick() == 0
    assert len(parts.transport.delivered) == 0 and parts.store.rows[message.message_id].attempts == 1
