"""kill -9 in the middle of a burst, then restart: nothing is sent twice and nothing is lost.

The sender runs as its own process against real Kafka and PostgreSQL and a real SMTP server
(aiosmtpd in this process, counting every Message-ID it accepts). "Nothing lost" under the
sender's never-twice rule (README, "Dying between the relay's 250 and the commit") means:
every message ends with a published outcome — sent, or, for the few that were mid-SMTP when
the process died, failed/unconfirmed_claim — and none reaches the server twice.
"""

from __future__ import annotations

import asyncio
import uuid
from collections import Counter
from datetime import UTC, datetime
from email import message_from_bytes
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from retarget.common.kafka import make_consumer, make_producer
from retarget.common.schemas import DeliveryRecorded, OutboundMessage, decoder, encode
from retarget.common.settings import CommonSettings
from retarget.common.topics import Topics, domain_key

from .conftest import free_port

pytestmark = pytest.mark.e2e

MESSAGES = 2000
CONNECTIONS = 6


class CountingSmtp:
    def __init__(self) -> None:
        self.received: Counter[str] = Counter()

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        self.received[str(message_from_bytes(envelope.content)["Message-ID"])] += 1
        return "250 2.0.0 Ok: queued"


def _message(workspace_id: str, n: int) -> OutboundMessage:
    message_id = f"m-{uuid.uuid4().hex}"
    recipient = f"r{n}@d{n % 4}.{workspace_id}.example"
    raw = f"From: Shop <news@shop.example>\r\nTo: {recipient}\r\nMessage-ID: <{message_id}@shop.example>\r\n\r\nhi\r\n"
    return OutboundMessage(
        message_id=message_id,
        trigger_id=uuid.uuid4().hex,
        workspace_id=workspace_id,
        profile_id=f"p{n}",
        campaign="cart",
        recipient=recipient,
        mail_from="bounces@shop.example",
        raw=raw,
        created_at=datetime.now(UTC),
    )


async def test_kill_9_during_a_burst_then_restart_sends_nothing_twice_and_loses_nothing(
    launch: Any, stack: dict[str, str], topic_prefix: str, workspace_id: str
) -> None:
    smtp, smtp_port = CountingSmtp(), free_port()
    controller = Controller(smtp, hostname="127.0.0.1", port=smtp_port)
    controller.start()
    env = {
        "RETARGET_TOPIC_PREFIX": topic_prefix,
        "RETARGET_TOPIC_PARTITIONS": "2",
        "RETARGET_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
        "RETARGET_SMTP_CONNECTIONS": str(CONNECTIONS),
        "RETARGET_BATCH_SIZE": "200",  # many more admitted messages than connections at the kill
        "RETARGET_RATE_DOMAIN": "0/0",
        "RETARGET_FREQUENCY_CAPS": "",
        "RETARGET_SENDER_GROUP": f"sender-{topic_prefix}",
        "RETARGET_SENDER_INSTANCE_ID": "sender-0",  # static membership: the restart rejoins at once
        "RETARGET_CLAIM_LEASE_S": "2",
        "RETARGET_RETRY_POLL_S": "0.5",
    }
    settings = CommonSettings.model_validate({"kafka_bootstrap": stack["RETARGET_KAFKA_BOOTSTRAP"]})
    topics = Topics(topic_prefix)
    messages = [_message(workspace_id, n) for n in range(MESSAGES)]
    try:
        first = launch("sender", "RETARGET_OPS_PORT", env)
        await asyncio.to_thread(first.wait_healthy)
        producer = make_producer(settings)
        await producer.start()
        try:
            for m in messages:
                await producer.send(topics.outbound, encode(m), key=domain_key(m.recipient))
            await producer.flush()
        finally:
            await producer.stop()
        while sum(smtp.received.values()) < MESSAGES // 4:
            assert first.process.poll() is None, first.tail()
            await asyncio.sleep(0.02)
        first.process.kill()  # SIGKILL: no shutdown, no commit, SMTP sessions cut mid-way
        first.process.wait()
        at_kill = sum(smtp.received.values())
        assert at_kill < MESSAGES, "the burst finished before the kill; slow the sender down"

        second = launch("sender", "RETARGET_OPS_PORT", env)
        await asyncio.to_thread(second.wait_healthy)
        outcomes = await _final_outcomes(settings, topics, {m.message_id for m in messages}, timeout_s=60)
    finally:
        controller.stop()
        conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
        await conn.execute("DELETE FROM send_log WHERE workspace_id = $1", workspace_id)
        await conn.close()

    received = {mid.strip("<>").split("@")[0]: n for mid, n in smtp.received.items()}
    assert max(received.values()) == 1, "a message reached the SMTP server twice"
    assert set(outcomes) == {m.message_id for m in messages}, "a message has no outcome"
    unconfirmed = {mid for mid, o in outcomes.items() if o == ("failed", "unconfirmed_claim")}
    sent = {mid for mid, o in outcomes.items() if o == ("sent", "accepted")}
    assert sent | unconfirmed == set(outcomes)
    assert sent <= set(received)  # every 'sent' really arrived, once
    assert len(unconfirmed) <= CONNECTIONS  # only what was mid-SMTP at the kill
    assert at_kill < MESSAGES and len(sent) >= MESSAGES - CONNECTIONS


async def _final_outcomes(
    settings: CommonSettings, topics: Topics, wanted: set[str], timeout_s: float
) -> dict[str, tuple[str, str]]:
    consumer = make_consumer(settings, topics.deliveries, group_id=f"reader-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    decode = decoder(DeliveryRecorded)
    outcomes: dict[str, tuple[str, str]] = {}
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        while set(outcomes) != wanted and asyncio.get_running_loop().time() < deadline:
            for part in (await consumer.getmany(timeout_ms=200)).values():
                for record in part:
                    d = decode.decode(record.value)
                    outcomes[d.message_id] = (d.outcome, d.reason)
    finally:
        await consumer.stop()
    return outcomes
