"""Senders joining, leaving and dying (kill -9) at random moments during a burst.

A second and third member keep joining the group and leaving it (gracefully or by SIGKILL)
while the first one works, so partitions move mid-batch again and again. Whatever the
moment: no message reaches the SMTP server twice, every message gets exactly one final
outcome (sent, or failed/unconfirmed_claim for one cut mid-SMTP), and no message gets two
different ones.
"""

from __future__ import annotations

import asyncio
import random
import signal
from typing import Any

import asyncpg
import pytest

from retarget.common.schemas import encode
from retarget.common.settings import CommonSettings
from retarget.common.topics import Topics, recipient_key

from .mail import SENT, UNCONFIRMED, counting_smtp, final_outcomes, outbound_message, produce

pytestmark = pytest.mark.e2e

MESSAGES = 1500


async def test_members_joining_leaving_and_dying_during_a_burst_send_nothing_twice_and_lose_nothing(
    launch: Any, stack: dict[str, str], topic_prefix: str, workspace_id: str
) -> None:
    rng = random.Random(20261129)
    settings = CommonSettings.model_validate({"kafka_bootstrap": stack["RETARGET_KAFKA_BOOTSTRAP"]})
    topics = Topics(topic_prefix)
    messages = [outbound_message(workspace_id, n) for n in range(MESSAGES)]
    try:
        with counting_smtp() as (smtp, smtp_port):
            env = {
                "RETARGET_TOPIC_PREFIX": topic_prefix,
                "RETARGET_TOPIC_PARTITIONS": "4",
                "RETARGET_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
                "RETARGET_SMTP_CONNECTIONS": "4",
                "RETARGET_BATCH_SIZE": "100",
                "RETARGET_RATE_DOMAIN": "15/5",  # ~25 s for the burst: it outlives the churn
                "RETARGET_FREQUENCY_CAPS": "",
                "RETARGET_SENDER_GROUP": f"sender-{topic_prefix}",
                "RETARGET_CLAIM_LEASE_S": "2",
                "RETARGET_RETRY_POLL_S": "0.5",
            }
            first = launch("sender", "RETARGET_OPS_PORT", env)
            await asyncio.to_thread(first.wait_healthy)
            await produce(
                settings, topics.outbound, [(recipient_key(m.recipient), encode(m)) for m in messages]
            )
            for round_ in range(6):
                other = launch("sender", "RETARGET_OPS_PORT", env)
                await asyncio.to_thread(other.wait_healthy)
                await asyncio.sleep(rng.uniform(0.5, 4.0))  # a rebalance, then batches in hand
                if round_ % 2:
                    other.process.kill()  # SIGKILL mid-batch
                else:
                    other.process.send_signal(signal.SIGTERM)  # leaves the group
                other.process.wait()
            first.process.kill()  # and the first one dies too, then comes back
            first.process.wait()
            last = launch("sender", "RETARGET_OPS_PORT", env)
            await asyncio.to_thread(last.wait_healthy)
            # read on 5 s after the last outcome came: a late second outcome would show
            outcomes = await final_outcomes(
                settings, topics.deliveries, {m.message_id for m in messages}, timeout_s=120, linger_s=5
            )
    finally:
        conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
        await conn.execute("DELETE FROM send_log WHERE workspace_id = $1", workspace_id)
        await conn.close()

    smtp.assert_none_twice()
    assert set(outcomes) == {m.message_id for m in messages}, "a message has no outcome"
    twice = {mid: o for mid, o in outcomes.items() if len(o) > 1}
    assert not twice, f"messages with two different outcomes: {list(twice.items())[:5]}"
    final = {mid: next(iter(o)) for mid, o in outcomes.items()}
    assert set(final.values()) <= {SENT, UNCONFIRMED}
    assert {mid for mid, o in final.items() if o == SENT} <= set(smtp.received)
