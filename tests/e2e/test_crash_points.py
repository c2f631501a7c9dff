"""kill -9 at each named step (retarget.common.faults), restart, and count (the sender, the
composer, and ingest between Kafka's ack and its answer).

The sender and the composer run as processes against real Kafka and PostgreSQL (and, for the
sender, an aiosmtpd server in this process that counts every Message-ID it accepts). The first
process is started with RETARGET_CRASH_AT=<step> and SIGKILLs itself there; the second runs
without it. Then:

* sender — no Message-ID reaches the SMTP server twice; every message has exactly one final
  delivery record (outcome other than `deferred`) on the deliveries topic: a replay may publish
  it again, but byte-identical, so by message id there is one; a message whose fate the crash
  made unknowable ends `failed`/`unconfirmed_claim`, never in silence; no send-log row is left
  `claimed` and no retry row is left behind.
* composer — every trigger's message id is on the outbound topic. After a crash before the
  produce exactly once; after the produce and before the commit possibly twice (the replay
  produces again; the sender's send log dedupes by message id).
"""

from __future__ import annotations

import asyncio
import secrets
import uuid
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest

from retarget.common.kafka import ensure_topics
from retarget.common.schemas import DeliveryRecorded, OutboundMessage, decoder, encode
from retarget.common.settings import CommonSettings
from retarget.common.topics import Topics, profile_key, recipient_key
from retarget.composer.samples import sample_trigger

from .conftest import new_workspace
from .mail import counting_smtp, outbound_message, produce, read_until

pytestmark = pytest.mark.e2e

MESSAGES = 24
CONNECTIONS = 4


async def _died(service: Any, timeout_s: float) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + timeout_s
    while service.process.poll() is None:
        assert loop.time() < deadline, f"the crash point was never reached:\n{service.tail()}"
        await asyncio.sleep(0.1)
    assert service.process.returncode == -9, service.tail()  # SIGKILL, by its own hand


_deliveries = decoder(DeliveryRecorded)


def _finals(values: list[bytes]) -> set[bytes]:
    return {v for v in values if _deliveries.decode(v).outcome != "deferred"}


@pytest.mark.parametrize(
    "step",
    [
        "stage.after_handle",
        "stage.after_produce",
        "sender.after_claim",
        "sender.after_smtp_250",
        "sender.after_outcome",
        "sender.retry_after_claim",
    ],
)
async def test_the_sender_killed_at_a_step_sends_nothing_twice_and_loses_no_outcome(
    launch: Any, stack: dict[str, str], topic_prefix: str, workspace_id: str, step: str
) -> None:
    with counting_smtp() as (smtp, smtp_port):
        env = {
            "RETARGET_TOPIC_PREFIX": topic_prefix,
            "RETARGET_TOPIC_PARTITIONS": "2",
            "RETARGET_SMTP_URL": f"smtp://127.0.0.1:{smtp_port}",
            "RETARGET_SMTP_CONNECTIONS": str(CONNECTIONS),
            "RETARGET_RATE_DOMAIN": "0/0",
            "RETARGET_FREQUENCY_CAPS": "",
            "RETARGET_SENDER_GROUP": f"sender-{topic_prefix}",
            "RETARGET_SENDER_INSTANCE_ID": "sender-0",  # static membership: the restart rejoins at once
            "RETARGET_CLAIM_LEASE_S": "2",
            "RETARGET_RETRY_POLL_S": "0.5",
            "RETARGET_RETRY_INITIAL_S": "0.5",
        }
        settings = CommonSettings.model_validate({"kafka_bootstrap": stack["RETARGET_KAFKA_BOOTSTRAP"]})
        topics = Topics(topic_prefix)
        local = "flaky-" if step == "sender.retry_after_claim" else "r"
        messages = [outbound_message(workspace_id, n, local=local, domains=3) for n in range(MESSAGES)]
        wanted = {m.message_id for m in messages}
        try:
            first = launch("sender", "RETARGET_OPS_PORT", {**env, "RETARGET_CRASH_AT": step})
            await asyncio.to_thread(first.wait_healthy)
            await produce(
                settings, topics.outbound, [(recipient_key(m.recipient), encode(m)) for m in messages]
            )
            await _died(first, timeout_s=90)
            second = launch("sender", "RETARGET_OPS_PORT", env)
            await asyncio.to_thread(second.wait_healthy)
            deliveries = await read_until(
                settings,
                topics.deliveries,
                lambda found: all(_finals(found.get(mid, [])) for mid in wanted),
                timeout_s=120,
            )
            conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
            try:
                states = dict(
                    await conn.fetch(
                        "SELECT message_id, state FROM send_log WHERE workspace_id = $1", workspace_id
                    )
                )
                retries = await conn.fetchval(
                    "SELECT count(*) FROM send_retries WHERE message_id = ANY($1::text[])", list(wanted)
                )
            finally:
                await conn.close()
        finally:
            conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
            await conn.execute("DELETE FROM send_log WHERE workspace_id = $1", workspace_id)
            await conn.close()

    smtp.assert_none_twice()
    finals = {mid: _finals(deliveries.get(mid, [])) for mid in wanted}
    assert [mid for mid, f in finals.items() if len(f) != 1] == [], (
        "a message has no, or two different, outcomes"
    )
    outcomes = {mid: _deliveries.decode(next(iter(f))) for mid, f in finals.items()}
    for mid, d in outcomes.items():
        assert (d.outcome, d.reason) in {("sent", "accepted"), ("failed", "unconfirmed_claim")}, (mid, d)
        if d.outcome == "sent":
            assert smtp.received[mid] == 1  # 'sent' really arrived, once
    unconfirmed = [mid for mid, d in outcomes.items() if d.outcome == "failed"]
    assert len(unconfirmed) <= CONNECTIONS  # only what was between claim and record at the kill
    if step in ("sender.after_claim", "sender.after_smtp_250", "sender.retry_after_claim"):
        assert unconfirmed, "the message in hand at the kill should be closed as unconfirmed"
    assert set(states) == wanted and "claimed" not in states.values(), "a claim was left unfinished"
    assert retries == 0, "a retry row was left behind"


@pytest.mark.parametrize("step", ["stage.after_handle", "stage.after_produce"])
async def test_the_composer_killed_at_a_step_loses_no_message(
    launch: Any, stack: dict[str, str], topic_prefix: str, workspace_id: str, step: str
) -> None:
    await new_workspace(stack["RETARGET_DATABASE_URL"], workspace_id)
    env = {
        "RETARGET_TOPIC_PREFIX": topic_prefix,
        "RETARGET_TOPIC_PARTITIONS": "2",
        "RETARGET_LINK_SECRET": secrets.token_hex(16),
    }
    settings = CommonSettings.model_validate({"kafka_bootstrap": stack["RETARGET_KAFKA_BOOTSTRAP"]})
    topics = Topics(topic_prefix)
    await ensure_topics(settings, topics.all(), partitions=2)
    base = msgspec.structs.replace(sample_trigger("abandoned_cart"), workspace_id=workspace_id)
    triggers = [
        msgspec.structs.replace(base, trigger_id=uuid.uuid4().hex, profile_id=f"p{n}")
        for n in range(MESSAGES)
    ]
    try:
        first = launch("composer", "RETARGET_OPS_PORT", {**env, "RETARGET_CRASH_AT": step})
        await asyncio.to_thread(first.wait_healthy)
        await produce(
            settings,
            topics.triggers,
            [(profile_key(workspace_id, t.profile_id), encode(t)) for t in triggers],
        )
        await _died(first, timeout_s=90)
        second = launch("composer", "RETARGET_OPS_PORT", env)
        await asyncio.to_thread(second.wait_healthy)
        outbound = await read_until(
            settings, topics.outbound, lambda found: len(found) >= MESSAGES, timeout_s=120
        )
        await asyncio.sleep(2)  # read again: copies produced by the replay meanwhile are counted too
        outbound = await read_until(
            settings, topics.outbound, lambda found: len(found) >= MESSAGES, timeout_s=120
        )
    finally:
        conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
        await conn.execute("DELETE FROM write_keys WHERE workspace_id = $1", workspace_id)
        await conn.execute("DELETE FROM workspaces WHERE id = $1", workspace_id)
        await conn.close()
    by_trigger = {
        msgspec.json.decode(v[0], type=OutboundMessage).trigger_id: len(v) for v in outbound.values()
    }
    assert set(by_trigger) == {t.trigger_id for t in triggers}, "a trigger's message is missing"
    if step == "stage.after_handle":
        assert max(by_trigger.values()) == 1  # nothing was produced before the kill
    else:
        assert max(by_trigger.values()) <= 2  # produced, not committed: replayed once (sender dedupes)


async def test_ingest_killed_after_kafkas_ack_publishes_a_retried_batch_again_under_the_same_ids(
    launch: Any, stack: dict[str, str], topic_prefix: str, workspace_id: str
) -> None:
    """The client gets no answer, so an SDK retries: the events reach the topic twice, under the
    same messageId and key (one partition, one profile), which the segmenter drops as
    duplicates (its recent_message_ids window). Before the crash point was called, the
    variable did nothing and the process answered 200."""
    write_key = await new_workspace(stack["RETARGET_DATABASE_URL"], workspace_id)
    env = {"RETARGET_TOPIC_PREFIX": topic_prefix, "RETARGET_TOPIC_PARTITIONS": "2"}
    settings = CommonSettings.model_validate({"kafka_bootstrap": stack["RETARGET_KAFKA_BOOTSTRAP"]})
    batch = {
        "batch": [
            {"type": "track", "userId": f"u{n}", "event": "Viewed", "messageId": f"m-{uuid.uuid4().hex}"}
            for n in range(MESSAGES)
        ]
    }
    wanted = {e["messageId"] for e in batch["batch"]}
    auth = httpx.BasicAuth(write_key, "")
    try:
        first = launch("ingest", "RETARGET_PORT", {**env, "RETARGET_CRASH_AT": "ingest.after_publish"})
        await asyncio.to_thread(first.wait_healthy)
        async with httpx.AsyncClient(base_url=first.url, auth=auth, timeout=30) as client:
            with pytest.raises(httpx.TransportError):  # no answer: the connection died with it
                await client.post("/v1/batch", json=batch)
        await _died(first, timeout_s=30)
        second = launch("ingest", "RETARGET_PORT", env)
        await asyncio.to_thread(second.wait_healthy)
        async with httpx.AsyncClient(base_url=second.url, auth=auth, timeout=30) as client:
            retried = await client.post("/v1/batch", json=batch)  # what an SDK does
        assert (retried.status_code, retried.json()) == (200, {"success": True})
        events = await read_until(
            settings,
            Topics(topic_prefix).events,
            lambda found: all(len(found.get(mid, [])) >= 2 for mid in wanted),
            timeout_s=60,
        )
    finally:
        conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
        await conn.execute("DELETE FROM write_keys WHERE workspace_id = $1", workspace_id)
        await conn.execute("DELETE FROM workspaces WHERE id = $1", workspace_id)
        await conn.close()
    assert {mid: len(events.get(mid, [])) for mid in wanted} == dict.fromkeys(wanted, 2)
    for copies in events.values():  # the same event again: same user, same id, same time
        first_copy, second_copy = (msgspec.json.decode(v) for v in copies)
        assert first_copy["userId"] == second_copy["userId"]
        assert first_copy["messageId"] == second_copy["messageId"]
