"""GDPR erasure end to end, every service a separate process on the real stack:
an email goes out; the person is exported, erased through ingest's API, exported again
(nothing left but the hashed suppression, the erasure record and send-log rows without
personal data; tombstones in the segmenter's changelog); then the same person comes back
and the new trigger is suppressed by the sender: no second email.
"""

from __future__ import annotations

import asyncio
import secrets
import time
import uuid
from pathlib import Path
from typing import Any

import asyncpg
import httpx
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer

from retarget.common.privacy import ERASED_PROFILE
from retarget.common.schemas import DeliveryRecorded
from retarget.common.secret_keys import SecretKeyStore
from retarget.common.topics import Topics

from .conftest import mails_to, new_workspace

pytestmark = pytest.mark.e2e


async def wait_for(what: str, check: Any, timeout_s: float, services: list) -> Any:
    deadline = time.monotonic() + timeout_s
    while time.monotonic() < deadline:
        result = await check()
        if result:
            return result
        await asyncio.sleep(0.3)
    logs = "\n\n".join(f"--- {s.name}\n{s.tail()}" for s in services)
    pytest.fail(f"{what} not seen within {timeout_s} s\n{logs}")


async def read_topic(bootstrap: str, topic: str) -> list[tuple[bytes | None, bytes | None]]:
    """Every record of a topic, from the start to its current end."""
    consumer = AIOKafkaConsumer(
        topic, bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()  # no group: every partition of the topic is assigned to this consumer
    try:
        for _ in range(200):  # the assignment comes with the first metadata answer
            if consumer.assignment():
                break
            await asyncio.sleep(0.05)
        partitions = sorted(consumer.assignment())
        ends = await consumer.end_offsets(partitions)
        records: list[tuple[bytes | None, bytes | None]] = []
        while [tp for tp in partitions if await consumer.position(tp) < ends[tp]]:
            for batch in (await consumer.getmany(timeout_ms=500)).values():
                records += [(r.key, r.value) for r in batch]
        return records
    finally:
        await consumer.stop()


async def test_an_erased_person_is_gone_and_never_emailed_again(
    launch, stack: dict[str, str], capture_dir: Path, topic_prefix: str, workspace_id: str, tmp_path: Path
):
    write_key = await new_workspace(stack["RETARGET_DATABASE_URL"], workspace_id)
    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    try:  # the privacy endpoints take a secret key with scope privacy, never the (public) write key
        secret_key = await SecretKeyStore(conn).create(workspace_id, ["privacy"], label="e2e")
    finally:
        await conn.close()
    common = {
        "RETARGET_TOPIC_PREFIX": topic_prefix,
        "RETARGET_TOPIC_PARTITIONS": "2",
        "RETARGET_LINK_SECRET": secrets.token_hex(16),
    }
    segmenter = launch(
        "segmenter",
        "RETARGET_WEB_PORT",
        {**common, "RETARGET_CART_WAIT_S": "1", "RETARGET_DATA_DIR": str(tmp_path / "segmenter")},
    )
    services = [
        segmenter,
        launch("composer", "RETARGET_OPS_PORT", common),
        launch("sender", "RETARGET_OPS_PORT", common),
        launch("ingest", "RETARGET_PORT", {**common, "RETARGET_SEGMENTER_URL": segmenter.url}),
    ]
    for service in services:
        await asyncio.to_thread(service.wait_healthy)
    ingest = services[-1]

    recipient = f"gdpr-{uuid.uuid4().hex[:8]}@example.com"
    user_id, visitor = f"user-{uuid.uuid4().hex[:8]}", f"anon-{uuid.uuid4().hex[:8]}"
    other_device = f"anon-{uuid.uuid4().hex[:8]}"
    cart = {"product_id": "boot-1", "name": "Trail Boot", "price": 89.5, "currency": "EUR"}
    async with httpx.AsyncClient(base_url=ingest.url, auth=(write_key, ""), timeout=15) as client:

        async def post(path: str, body: dict[str, Any]) -> dict[str, Any]:
            if path.startswith("/v1/privacy/"):  # not the client's Basic write key: the secret key
                response = await client.post(
                    path, json=body, auth=None, headers={"Authorization": f"Bearer {secret_key}"}
                )
            else:
                response = await client.post(path, json=body)
            assert response.status_code == 200, response.text
            return response.json()  # type: ignore[no-any-return]

        await post(
            "/v1/identify", {"anonymousId": visitor, "traits": {"email": recipient, "firstName": "Ann"}}
        )
        await post("/v1/identify", {"anonymousId": visitor, "userId": user_id})  # login: merge
        await post("/v1/track", {"anonymousId": visitor, "event": "Product Added", "properties": cart})
        # the same person on another device, never logged in there: found by the address alone
        await post("/v1/identify", {"anonymousId": other_device, "traits": {"email": recipient.upper()}})

        async def first_mail() -> list:
            return await asyncio.to_thread(mails_to, capture_dir, recipient)

        await wait_for("the first email", first_mail, 60, services)

        before = await post("/v1/privacy/export", {"userId": user_id})
        assert [p["email"] for p in before["profiles"]] == [recipient], before
        assert len(before["messages"]) == 1 and before["messages"][0]["profile_id"] == user_id

        report = await post("/v1/privacy/erase", {"userId": user_id})  # the address comes from the profile
        assert (report["suppressed"], report["send_log_rows_scrubbed"]) == (1, 1), report

        async def profile_gone() -> dict[str, Any] | None:
            after = await post("/v1/privacy/export", {"userId": user_id, "email": recipient})
            return after if not after["profiles"] and "notes" not in after else None

        after = await wait_for("the profile's erasure", profile_gone, 20, services)
        assert [s["reason"] for s in after["suppressions"]] == ["erased"]
        assert len(after["erasures"]) == 1 and after["erasures"][0]["source"] == "api"
        assert all(m["profile_id"] == ERASED_PROFILE and m["last_reason"] is None for m in after["messages"])
        assert after["campaign_unsubscribes"] == []

        # deleted, not overwritten: tombstones for the profile, its redirect and the other device's profile
        changelog = await read_topic(
            stack["RETARGET_KAFKA_BOOTSTRAP"], f"{topic_prefix}-segmenter-profiles-changelog"
        )
        last = {key: value for key, value in changelog}
        for key in (
            f"{workspace_id}:{user_id}",
            f"{workspace_id}:{visitor}",
            f"{workspace_id}:{other_device}",
        ):
            assert key.encode() in last and last[key.encode()] is None, key

        # the same person comes back: a new profile and a new trigger, which the sender suppresses
        await post("/v1/identify", {"userId": user_id, "traits": {"email": recipient}})
        await post("/v1/track", {"userId": user_id, "event": "Product Added", "properties": cart})

    async def suppressed() -> bool:
        records = await read_topic(stack["RETARGET_KAFKA_BOOTSTRAP"], Topics(topic_prefix).deliveries)
        outcomes = [msgspec.json.decode(v, type=DeliveryRecorded) for _, v in records if v]
        return any(o.profile_id == user_id and o.outcome == "suppressed" for o in outcomes)

    await wait_for("the sender's 'suppressed' outcome", suppressed, 30, services)
    assert len(mails_to(capture_dir, recipient)) == 1, "an erased person must not be emailed again"

    for service in reversed(services):
        code = await asyncio.to_thread(service.stop)
        assert code == 0, f"{service.name} exited with {code} on SIGTERM:\n{service.tail()}"
