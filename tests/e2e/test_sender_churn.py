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
import uuid
from collections import defaultdict
from typing import Any

import asyncpg
import pytest
from aiosmtpd.controller import Controller

from retarget.common.kafka import make_consumer, make_producer
from retarget.common.schemas import DeliveryRecorded, decoder, encode
from retarget.common.settings import CommonSettings
from retarget.common.topics import Topics, domain_key

from .conftest import free_port
from .test_sender_crash import CountingSmtp, _message

pytestmark = pytest.mark.e2e

MESSAGES = 1500


async def test_members_joining_leaving_and_dying_during_a_burst_send_nothing_twice_and_lose_nothing(
    launch: Any, stack: dict[str, str], topic_prefix: str, workspace_id: str
) -> None:
    rng = random.Random(20261129)
    smtp, smtp_port = CountingSmtp(), free_port()
    controller = Controller(smtp, hostname="127.0.0.1", port=smtp_port)
    controller.start()
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
        outcomes = await _all_outcomes(settings, topics, {m.message_id for m in messages}, timeout_s=120)
    finally:
        controller.stop()
        conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
        await conn.execute("DELETE FROM send_log WHERE workspace_id = $1", workspace_id)
        await conn.close()

    received = {mid.strip("<>").split("@")[0]: n for mid, n in smtp.received.items()}
    assert max(received.values()) == 1, "a message reached the SMTP server twice"
    assert set(outcomes) == {m.message_id for m in messages}, "a message has no outcome"
    twice = {mid: o for mid, o in outcomes.items() if len(o) > 1}
    assert not twice, f"messages with two different outcomes: {list(twice.items())[:5]}"
    final = {mid: next(iter(o)) for mid, o in outcomes.items()}
    assert set(final.values()) <= {("sent", "accepted"), ("failed", "unconfirmed_claim")}
    assert {mid for mid, o in final.items() if o == ("sent", "accepted")} <= set(received)


async def _all_outcomes(
    settings: CommonSettings, topics: Topics, wanted: set[str], timeout_s: float
) -> dict[str, set[tuple[str, str]]]:
    consumer = make_consumer(settings, topics.deliveries, group_id=f"reader-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    decode = decoder(DeliveryRecorded)
    outcomes: dict[str, set[tuple[str, str]]] = defaultdict(set)
    try:
        deadline = asyncio.get_running_loop().time() + timeout_s
        quiet_until = None
        while asyncio.get_running_loop().time() < deadline:
            got = False
            for part in (await consumer.getmany(timeout_ms=200)).values():
                for record in part:
                    d = decode.decode(record.value)
                    outcomes[d.message_id].add((d.outcome, d.reason))
                    got = True
            now = asyncio.get_running_loop().time()
            if set(outcomes) == wanted:  # all in: read a little longer for late second outcomes
                quiet_until = quiet_until or now + 5
                if now > quiet_until and not got:
                    break
    finally:
        await consumer.stop()
    return dict(outcomes)
