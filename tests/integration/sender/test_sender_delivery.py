"""The sender end to end in-process: real Kafka, PostgreSQL and SMTP server."""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from retarget.common.identity import email_digest
from retarget.sender.bootstrap import Sender
from retarget.sender.settings import SenderSettings

from .conftest import ScriptedSmtp, outbound_message, produce

pytestmark = pytest.mark.integration


def _outcomes(reader: Any, message_id: str) -> list[tuple[str, str]]:
    return [(d.outcome, d.reason) for d in reader.deliveries() if d.message_id == message_id]


async def _wait_for(reader: Any, message_id: str, outcome: str, timeout_s: float = 30.0) -> None:
    def done(_: list[bytes]) -> bool:
        return any(o == outcome for o, _ in _outcomes(reader, message_id))

    await reader.until(done, timeout_s)


async def test_a_message_arrives_once_and_sent_is_published(
    running_sender: Sender,
    sender_settings: SenderSettings,
    smtp: ScriptedSmtp,
    workspace_id: str,
    read_topic: Any,
) -> None:
    deliveries = await read_topic(running_sender.topics.deliveries)
    message = outbound_message(workspace_id)
    await produce(sender_settings, message)
    await _wait_for(deliveries, message.message_id, "sent")
    assert smtp.count(f"<{message.message_id}@shop.example>") == 1
    [delivery] = [d for d in deliveries.deliveries() if d.message_id == message.message_id]
    assert (delivery.workspace_id, delivery.smtp_code, delivery.attempt) == (workspace_id, 250, 1)


async def test_a_message_produced_twice_is_sent_once(
    running_sender: Sender,
    sender_settings: SenderSettings,
    smtp: ScriptedSmtp,
    workspace_id: str,
    read_topic: Any,
) -> None:
    deliveries = await read_topic(running_sender.topics.deliveries)
    message = outbound_message(workspace_id)
    await produce(sender_settings, message)
    await _wait_for(deliveries, message.message_id, "sent")
    await produce(sender_settings, message)  # a redelivery: another batch, same message id
    marker = outbound_message(workspace_id)  # once this is through, the duplicate was handled
    await produce(sender_settings, marker)
    await _wait_for(deliveries, marker.message_id, "sent")
    assert smtp.count(f"<{message.message_id}@shop.example>") == 1
    outcomes = _outcomes(deliveries, message.message_id)
    assert set(outcomes) == {("sent", "accepted")}  # replayed, identical, never a second send


async def test_a_suppressed_recipient_gets_nothing(
    running_sender: Sender,
    sender_settings: SenderSettings,
    smtp: ScriptedSmtp,
    workspace_id: str,
    read_topic: Any,
) -> None:
    deliveries = await read_topic(running_sender.topics.deliveries)
    message = outbound_message(workspace_id)
    conn = await asyncpg.connect(sender_settings.database_url)
    try:
        await conn.execute(
            "INSERT INTO suppressions (workspace_id, email_hash, reason, source) VALUES ($1, $2, 'unsubscribed', 'test')",
            workspace_id,
            email_digest(message.recipient),
        )
    finally:
        await conn.close()
    await produce(sender_settings, message)
    await _wait_for(deliveries, message.message_id, "suppressed")
    assert _outcomes(deliveries, message.message_id) == [("suppressed", "unsubscribed")]
    assert smtp.count(f"<{message.message_id}@shop.example>") == 0


async def test_a_5xx_recipient_bounces_and_becomes_suppressed(
    running_sender: Sender,
    sender_settings: SenderSettings,
    smtp: ScriptedSmtp,
    workspace_id: str,
    read_topic: Any,
) -> None:
    deliveries = await read_topic(running_sender.topics.deliveries)
    recipient = f"hard-{workspace_id}@example.com"
    first, second = outbound_message(workspace_id, recipient), outbound_message(workspace_id, recipient)
    await produce(sender_settings, first)
    await _wait_for(deliveries, first.message_id, "bounced")
    [bounce] = [d for d in deliveries.deliveries() if d.message_id == first.message_id]
    assert (bounce.reason, bounce.smtp_code) == ("hard_bounce", 550)
    conn = await asyncpg.connect(sender_settings.database_url)
    try:
        reason = await conn.fetchval(
            "SELECT reason FROM suppressions WHERE workspace_id = $1 AND email_hash = $2",
            workspace_id,
            email_digest(recipient),
        )
        reply = await conn.fetchval("SELECT last_reply FROM send_log WHERE message_id = $1", first.message_id)
    finally:
        await conn.close()
    assert reason == "hard_bounce"
    assert "hard-" not in reply and "<email:" in reply  # the address is redacted in the stored reply
    await produce(sender_settings, second)
    await _wait_for(deliveries, second.message_id, "suppressed")


async def test_a_4xx_is_deferred_then_retried_until_sent(
    running_sender: Sender,
    sender_settings: SenderSettings,
    smtp: ScriptedSmtp,
    workspace_id: str,
    read_topic: Any,
) -> None:
    deliveries = await read_topic(running_sender.topics.deliveries)
    always_soft = outbound_message(workspace_id, f"soft-{workspace_id}@example.com")
    greylisted = outbound_message(workspace_id, f"flaky-{workspace_id}@example.com")
    await produce(sender_settings, always_soft, greylisted)
    await _wait_for(deliveries, greylisted.message_id, "sent")
    attempts = [d for d in deliveries.deliveries() if d.message_id == greylisted.message_id]
    assert [(d.outcome, d.smtp_code, d.attempt) for d in attempts] == [("deferred", 451, 1), ("sent", 250, 2)]
    assert smtp.count(f"<{greylisted.message_id}@shop.example>") == 1
    await _wait_for(deliveries, always_soft.message_id, "deferred")
    assert ("deferred", "soft_bounce") in _outcomes(deliveries, always_soft.message_id)


async def test_an_undecodable_record_is_dead_lettered_and_the_sender_keeps_going(
    running_sender: Sender, sender_settings: SenderSettings, workspace_id: str, read_topic: Any
) -> None:
    deliveries = await read_topic(running_sender.topics.deliveries)
    dead = await read_topic(running_sender.topics.dead_letter)
    message = outbound_message(workspace_id)
    await produce(sender_settings, b"\x00not an outbound message", message)
    await _wait_for(deliveries, message.message_id, "sent")
    [letter] = await dead.until(lambda values: len(values) >= 1)
    assert b'"stage":"sender"' in letter and b"undecodable" in letter


async def test_ready_check_reports_every_dependency_answering(running_sender: Sender) -> None:
    assert await asyncio.wait_for(running_sender.ready(), 10) == {}
