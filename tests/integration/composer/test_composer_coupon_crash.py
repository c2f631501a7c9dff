"""The composer SIGKILLed (RETARGET_CRASH_AT=stage.after_handle) after it stored a trigger's
pool code and before the email was published: the restarted composer publishes one email
showing that same code, claims no second code, and stores one coupon row (atk17)."""

from __future__ import annotations

import asyncio
import email
import secrets
import time
import uuid
from collections.abc import Iterator
from email.policy import default as default_policy
from pathlib import Path

import asyncpg
import httpx
import msgspec
import pytest

from retarget.common.kafka import ensure_topics, make_producer
from retarget.common.schemas import OutboundMessage, encode
from retarget.common.settings import CommonSettings
from retarget.common.topics import Topics, profile_key
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.composer.samples import sample_trigger
from retarget.coupons.store import CouponStore
from retarget.devstack.child import Child, free_port, start_child
from retarget.devstack.env import kafka_bootstrap
from retarget.devstack.topic_reader import read_to_end

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]


@pytest.fixture
def composer_process(tmp_path: Path, stack: dict[str, str], topic_prefix: str) -> Iterator:
    started: list[Child] = []
    secret = secrets.token_hex(16)

    def start(crash_at: str = "") -> Child:
        port = free_port()
        env = {
            **stack,
            "RETARGET_OPS_PORT": str(port),
            "RETARGET_TOPIC_PREFIX": topic_prefix,
            "RETARGET_TOPIC_PARTITIONS": "1",
            "RETARGET_LINK_SECRET": secret,
            "RETARGET_CRASH_AT": crash_at,
        }
        log = tmp_path / f"composer-{len(started)}.log"
        child = start_child("composer", "retarget.composer", env=env, port=port, log=log, cwd=tmp_path)
        started.append(child)
        if crash_at:
            return child  # it dies at its crash point, maybe before it is ready
        deadline = time.monotonic() + 90
        while time.monotonic() < deadline:
            assert child.exited() is None, f"composer exited:\n{child.tail()}"
            try:
                if httpx.get(f"http://127.0.0.1:{port}/readyz", timeout=2).status_code == 200:
                    return child
            except httpx.TransportError:
                pass
            time.sleep(0.3)
        pytest.fail(f"composer not ready:\n{child.tail()}")

    yield start
    for child in started:
        if child.exited() is None:
            child.kill9()


async def test_a_composer_killed_after_claiming_a_pool_code_shows_that_code_once(
    composer_process, stack: dict[str, str], topic_prefix: str, workspace_id: str
) -> None:
    settings = CommonSettings.model_validate(
        {
            "kafka_bootstrap": stack["RETARGET_KAFKA_BOOTSTRAP"],
            "topic_prefix": topic_prefix,
            "topic_partitions": 1,
        }
    )
    topics = Topics(topic_prefix)
    await ensure_topics(settings, topics.all())
    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    try:
        await WorkspaceStore(conn).upsert(
            Workspace(workspace_id, "Boot Shop", "Boot Shop", "news@boots.example", "1 Main St, Springfield")
        )
        await CouponStore(conn).upload(workspace_id, "spring", ["CRASH-0001", "CRASH-0002"])
        trigger = msgspec.structs.replace(
            sample_trigger("abandoned_cart"),
            workspace_id=workspace_id,
            trigger_id=uuid.uuid4().hex,
            incentive={"kind": "percent_off", "value": 10, "coupon": {"mode": "pool", "pool": "spring"}},
        )
        producer = make_producer(settings)
        await producer.start()
        try:
            await producer.send_and_wait(
                topics.triggers, encode(trigger), key=profile_key(workspace_id, trigger.profile_id)
            )
        finally:
            await producer.stop()

        doomed = composer_process("stage.after_handle")
        assert await asyncio.to_thread(doomed.process.wait, 60) == -9, doomed.tail()
        stored = await conn.fetch("SELECT code FROM coupons WHERE workspace_id = $1", workspace_id)
        assert [r["code"] for r in stored] == ["CRASH-0001"]  # claimed and stored, nothing published

        composer_process()
        outbound: list[OutboundMessage] = []
        deadline = time.monotonic() + 60
        while not outbound and time.monotonic() < deadline:
            records = await read_to_end(kafka_bootstrap(), topics.outbound)
            outbound = [msgspec.json.decode(r.value, type=OutboundMessage) for r in records]
            await asyncio.sleep(0.5)
        await asyncio.sleep(3)  # and no second one follows
        records = await read_to_end(kafka_bootstrap(), topics.outbound)
        assert len(records) == 1, [r.value[:100] for r in records]
        body = email.message_from_string(
            msgspec.json.decode(records[0].value, type=OutboundMessage).raw, policy=default_policy
        ).get_body(("plain",))
        assert body is not None and "CRASH-0001" in str(body.get_content())
        rows = await conn.fetch("SELECT code, trigger_id FROM coupons WHERE workspace_id = $1", workspace_id)
        assert [(r["code"], r["trigger_id"]) for r in rows] == [("CRASH-0001", trigger.trigger_id)]
        assert await CouponStore(conn).pool_free(workspace_id, "spring") == 1
    finally:
        await conn.execute("DELETE FROM workspaces WHERE id = $1", workspace_id)
        await conn.close()
