"""kill -9 in the middle of a burst, then restart: nothing is sent twice and nothing is lost.

The sender runs as its own process against real Kafka and PostgreSQL and a real SMTP server
(aiosmtpd in this process, counting every Message-ID it accepts). "Nothing lost" under the
sender's never-twice rule (README, "Dying between the relay's 250 and the commit") means:
every message ends with a published outcome — sent, or, for the few that were mid-SMTP when
the process died, failed/unconfirmed_claim — and none reaches the server twice.
"""

from __future__ import annotations

import asyncio
from typing import Any

import asyncpg
import pytest

from retarget.common.schemas import encode
from retarget.common.settings import CommonSettings
from retarget.common.topics import Topics, recipient_key

from .mail import SENT, UNCONFIRMED, counting_smtp, final_outcomes, outbound_message, produce

pytestmark = pytest.mark.e2e

MESSAGES = 2000
CONNECTIONS = 6


async def test_kill_9_during_a_burst_then_restart_sends_nothing_twice_and_loses_nothing(
    launch: Any, stack: dict[str, str], topic_prefix: str, workspace_id: str
) -> None:
    settings = CommonSettings.model_validate({"kafka_bootstrap": stack["RETARGET_KAFKA_BOOTSTRAP"]})
    topics = Topics(topic_prefix)
    messages = [outbound_message(workspace_id, n) for n in range(MESSAGES)]
    try:
        with counting_smtp() as (smtp, smtp_port):
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
            first = launch("sender", "RETARGET_OPS_PORT", env)
            await asyncio.to_thread(first.wait_healthy)
            await produce(
                settings, topics.outbound, [(recipient_key(m.recipient), encode(m)) for m in messages]
            )
            while sum(smtp.received.values()) < MESSAGES // 4:
                assert first.process.poll() is None, first.tail()
                await asyncio.sleep(0.02)
            first.process.kill()  # SIGKILL: no shutdown, no commit, SMTP sessions cut mid-way
            first.process.wait()
            at_kill = sum(smtp.received.values())
            assert at_kill < MESSAGES, "the burst finished before the kill; slow the sender down"

            second = launch("sender", "RETARGET_OPS_PORT", env)
            await asyncio.to_thread(second.wait_healthy)
            outcomes = await final_outcomes(
                settings, topics.deliveries, {m.message_id for m in messages}, timeout_s=60
            )
    finally:
        conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
        await conn.execute("DELETE FROM send_log WHERE workspace_id = $1", workspace_id)
        await conn.close()

    smtp.assert_none_twice()
    assert set(outcomes) == {m.message_id for m in messages}, "a message has no outcome"
    assert all(len(o) == 1 for o in outcomes.values()), "a message has two different outcomes"
    final = {mid: next(iter(o)) for mid, o in outcomes.items()}
    unconfirmed = {mid for mid, o in final.items() if o == UNCONFIRMED}
    sent = {mid for mid, o in final.items() if o == SENT}
    assert sent | unconfirmed == set(final)
    assert sent <= set(smtp.received)  # every 'sent' really arrived, once
    assert len(unconfirmed) <= CONNECTIONS  # only what was mid-SMTP at the kill
    assert at_kill < MESSAGES and len(sent) >= MESSAGES - CONNECTIONS
