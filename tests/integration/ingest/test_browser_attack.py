"""Browser tracking under attack, on the real stack: a workspace's origin list is bounded by
every way of setting it, and ingest killed while a browser batch is in flight loses nothing
it answered 200 for (the SDK retries what got no 200)."""

from __future__ import annotations

import asyncio
import json
import uuid

import asyncpg
import httpx
import msgspec
import pytest

from retarget.common.schemas import TrackedEvent
from retarget.common.topics import Topics
from retarget.config.schemas import MAX_ORIGINS
from retarget.devstack.child import Child
from retarget.devstack.env import kafka_bootstrap
from retarget.devstack.topic_reader import read_to_end

from .conftest import Tenant
from .test_browser_ingest import allow_origins
from .test_browser_origins_config import cli, origins_of
from .test_ingest_crash_points import StartIngest, _died_by_sigkill, ingest_process  # noqa: F401

pytestmark = [pytest.mark.integration, pytest.mark.timeout(240)]

SHOP = "http://127.0.0.1:8123"


async def test_cli_create_refuses_more_origins_than_the_identity_allows(
    stack: dict[str, str], workspace_id: str
) -> None:
    """The identity (API, set-origins) holds at most MAX_ORIGINS; create must not store more."""
    many = [arg for i in range(MAX_ORIGINS + 1) for arg in ("--allowed-origin", f"https://s{i}.example")]
    base = ("workspace", "create", "--id", workspace_id, "--name", "Shop", "--from-email", "n@shop.example")
    try:
        made = cli(*base, "--from-name", "Shop", "--postal-address", "1 Main St", *many)
        assert made.returncode == 2, made.stdout + made.stderr
        assert "--allowed-origin" in made.stdout and str(MAX_ORIGINS) in made.stdout
        conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
        try:
            assert await conn.fetchval("SELECT count(*) FROM workspaces WHERE id = $1", workspace_id) == 0
        finally:
            await conn.close()

        ok = cli(*base, "--from-name", "Shop", "--postal-address", "1 Main St", *many[: 2 * MAX_ORIGINS])
        assert ok.returncode == 0, ok.stdout + ok.stderr
        assert len(await origins_of(workspace_id)) == MAX_ORIGINS
    finally:
        conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
        await conn.execute("DELETE FROM workspaces WHERE id = $1", workspace_id)
        await conn.close()


def _browser_batch(write_key: str, message_ids: list[str]) -> bytes:
    """analytics-next's batching delivery (/v1/b): text/plain, the key in the body."""
    batch = [
        {"type": "track", "event": "Product Added", "anonymousId": "anon-crash", "messageId": m}
        for m in message_ids
    ]
    return json.dumps({"writeKey": write_key, "batch": batch, "sentAt": "2026-01-05T10:00:00Z"}).encode()


async def _send(child: Child, body: bytes) -> int | str:
    headers = {"Content-Type": "text/plain;charset=UTF-8", "Origin": SHOP}
    async with httpx.AsyncClient(base_url=child.url, timeout=30) as client:
        try:
            return (await client.post("/v1/b", content=body, headers=headers)).status_code
        except httpx.HTTPError as exc:
            return type(exc).__name__


async def _copies(topic: str, message_ids: list[str]) -> dict[str, int]:
    decoder = msgspec.json.Decoder(TrackedEvent)
    counts = dict.fromkeys(message_ids, 0)
    for record in await read_to_end(kafka_bootstrap(), topic):
        message_id = decoder.decode(record.value).message_id
        if message_id in counts:
            counts[message_id] += 1
    return counts


@pytest.mark.parametrize(("crash_at", "kept"), [("ingest.before_publish", 0), ("ingest.after_publish", 1)])
async def test_ingest_killed_during_a_browser_batch_answers_no_200_and_the_retry_completes_it(
    ingest_process: StartIngest,  # noqa: F811
    tenant: Tenant,
    topic_prefix: str,
    crash_at: str,
    kept: int,
) -> None:
    await allow_origins(tenant.workspace_id, SHOP)
    topic = Topics(topic_prefix).events
    message_ids = [f"browser-crash-{uuid.uuid4().hex}" for _ in range(3)]
    body = _browser_batch(tenant.write_key, message_ids)
    doomed = await asyncio.to_thread(ingest_process, crash_at)

    assert await _send(doomed, body) != 200, "a 200 from a process that died answering"
    _died_by_sigkill(doomed)
    assert await _copies(topic, message_ids) == dict.fromkeys(message_ids, kept)  # all or nothing

    restarted = await asyncio.to_thread(ingest_process)
    assert await _send(restarted, body) == 200  # the SDK's retry
    # every event on the topic; a copy only where the first attempt was acknowledged (the
    # segmenter drops a messageId it has seen), never a 200 for something missing
    assert await _copies(topic, message_ids) == dict.fromkeys(message_ids, kept + 1)
