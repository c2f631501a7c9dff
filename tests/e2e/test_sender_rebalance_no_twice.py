"""Rebalances, the old-key/new-key upgrade and kill -9 with several senders: no Message-ID twice (#19, atk19).

The pipeline bench saw its SMTP sink count 1–3 more messages than the send log marked sent.
This drives the windows a real duplicate would need, with an aiosmtpd sink that counts every
Message-ID it accepts: a second sender joins mid-burst and leaves (SIGTERM) on 7 partitions
(partitions and limit shares move), a third joins, 1 in 8 messages is on the topic twice (once
under the old domain key, once under the recipient key, as during the upgrade), and the first
sender is SIGKILLed and another started. None arrives twice; every message gets one final
outcome. While the burst runs it samples how far the send log's 'sent' count trails the sink's:
the sink answers 250 before the sender records the outcome (a group commit later), so the
send log trails by a few 'claimed' messages — the bench's gap, without any duplicate.

No greylisted recipients here: their retry rows sit in the shared send_retries table, which a
sender older than migration 018 on the same database (another checkout's, an older demo's)
still leases and delivers to its own relay — see the atk19 report; that is not what this test
is about.
"""

from __future__ import annotations

import asyncio
import random
from pathlib import Path

import asyncpg
import pytest

from retarget.common.schemas import encode
from retarget.common.settings import CommonSettings
from retarget.common.topics import Topics, domain_key, recipient_key

from .conftest import Service, kill_all, start_service
from .mail import counting_smtp, final_outcomes, outbound_message, produce

pytestmark = [pytest.mark.e2e, pytest.mark.timeout(600)]

MESSAGES = 1200
CONNECTIONS = 4


async def test_rebalances_upgrade_and_kill_never_send_a_message_twice(
    stack: dict[str, str], topic_prefix: str, workspace_id: str, tmp_path: Path
) -> None:
    started: list[Service] = []

    def launch(env: dict[str, str]) -> Service:
        folder = tmp_path / f"sender{len(started)}"  # a log of its own
        folder.mkdir()
        started.append(start_service(stack, folder, "sender", "RETARGET_OPS_PORT", env))
        return started[-1]

    settings = CommonSettings.model_validate({"kafka_bootstrap": stack["RETARGET_KAFKA_BOOTSTRAP"]})
    topics = Topics(topic_prefix)
    rng = random.Random(19)
    messages = [outbound_message(workspace_id, n) for n in range(MESSAGES)]
    records = [(recipient_key(m.recipient), encode(m)) for m in messages]
    records += [(domain_key(m.recipient), encode(m)) for m in messages if rng.random() < 0.125]
    rng.shuffle(records)
    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    trail = 0  # most 'sent' the send log lagged behind the sink
    try:
        with counting_smtp() as (smtp, smtp_port):
            env = {
                "RETARGET_TOPIC_PREFIX": topic_prefix,
                "RETARGET_TOPIC_PARTITIONS": "7",
                "RETARGET_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
                "RETARGET_SMTP_CONNECTIONS": str(CONNECTIONS),
                "RETARGET_BATCH_SIZE": "100",
                "RETARGET_RATE_DOMAIN": "0/0",
                "RETARGET_FREQUENCY_CAPS": "",
                "RETARGET_SENDER_GROUP": f"sender-{topic_prefix}",
                "RETARGET_CLAIM_LEASE_S": "3",
                "RETARGET_RETRY_POLL_S": "0.5",
            }
            first = launch(env)
            await asyncio.to_thread(first.wait_healthy)
            await produce(settings, topics.outbound, records)

            async def until(count: int) -> None:
                nonlocal trail
                while (at_sink := sum(smtp.received.values())) < count:
                    sent = await conn.fetchval(
                        "SELECT count(*) FROM send_log WHERE workspace_id = $1 AND state = 'sent'",
                        workspace_id,
                    )
                    trail = max(trail, at_sink - sent)
                    await asyncio.sleep(0.05)

            await until(MESSAGES // 6)
            second = launch(env)  # joins: partitions and shares move
            await until(MESSAGES // 3)
            second.process.terminate()  # leaves cleanly: they move again
            second.process.wait()
            third = launch(env)
            await until(MESSAGES // 2)
            first.process.kill()  # SIGKILL mid-burst
            first.process.wait()
            launch(env)
            outcomes = await final_outcomes(
                settings, topics.deliveries, {m.message_id for m in messages}, timeout_s=240
            )
            await asyncio.sleep(2)  # a late copy, if any, reaches the sink
            assert third.process.poll() is None, third.tail()
    finally:
        kill_all(started)
        await conn.execute("DELETE FROM send_log WHERE workspace_id = $1", workspace_id)
        await conn.close()

    print(f"the send log's 'sent' trailed the sink by up to {trail}")
    smtp.assert_none_twice()
    assert set(outcomes) == {m.message_id for m in messages}, "a message has no outcome"
    assert all(len(o) == 1 for o in outcomes.values()), "a message has two different outcomes"
