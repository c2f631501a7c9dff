"""Consent modes from the real PostgreSQL at fire time, and the profile pages answered by any worker."""

from __future__ import annotations

import asyncio
import uuid
from datetime import UTC, datetime

import asyncpg
import httpx
import pytest

from retarget.common.identity import email_digest
from retarget.common.schemas import TrackedEvent
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.segmenter.workspace_modes import ConsentModes, PgConsentModes

from .conftest import Kafka

pytestmark = pytest.mark.integration


async def opt_in_workspace(database_url: str, workspace_id: str) -> None:
    conn = await asyncpg.connect(database_url)
    try:
        await WorkspaceStore(conn).upsert(
            Workspace(
                id=workspace_id,
                name="Shop",
                from_name="Shop",
                from_email="news@shop.example",
                postal_address="1 Main St",
                consent_mode="opt_in",
            )
        )
    finally:
        await conn.close()


def event(ws: str, anon: str, kind: str, **fields) -> TrackedEvent:
    at = datetime.now(UTC)
    return TrackedEvent(
        workspace_id=ws,
        type=kind,
        message_id=uuid.uuid4().hex,
        timestamp=at,
        received_at=at,
        anonymous_id=anon,
        **fields,
    )


async def test_the_mode_cache_reads_postgresql_and_survives_it_going_away(stack, workspace_id):
    await opt_in_workspace(stack["RETARGET_DATABASE_URL"], workspace_id)
    modes = ConsentModes(PgConsentModes(stack["RETARGET_DATABASE_URL"], timeout_s=2))
    assert await modes.refresh() and modes(workspace_id) == "opt_in"

    modes._fetch = PgConsentModes("postgresql://retarget@127.0.0.1:1/none", timeout_s=0.5)  # PostgreSQL away
    assert await modes.refresh() is False
    assert modes(workspace_id) == "opt_in"


async def test_opt_in_is_enforced_at_fire_time_and_any_worker_serves_any_profile(
    start_worker, kafka: Kafka, stack, workspace_id: str
):
    await opt_in_workspace(stack["RETARGET_DATABASE_URL"], workspace_id)
    workers = [start_worker("w1"), start_worker("w2")]
    for worker in workers:
        await asyncio.to_thread(worker.wait_ready)
    kafka.start_reading()

    visitors = {f"v{i}-{uuid.uuid4().hex[:6]}": i % 2 == 0 for i in range(6)}  # consented or not
    for visitor, consented in visitors.items():
        traits = {"email": f"{visitor}@example.com", **({"marketing_consent": True} if consented else {})}
        await kafka.send(event(workspace_id, visitor, "identify", traits=traits))
        props = {"product_id": "p1", "name": "Boot", "price": 10.0}
        await kafka.send(event(workspace_id, visitor, "track", event="Product Added", properties=props))

    consented = sorted(v for v, yes in visitors.items() if yes)
    fired = await kafka.wait_for_triggers(len(consented), timeout_s=30)
    await asyncio.sleep(1.0)  # the others were due at the same time: give them the chance to misfire
    assert sorted(t.profile_id for t in kafka.triggers) == consented, [w.tail() for w in workers]
    assert all(t.recipient.consent is True for t in fired)

    async with httpx.AsyncClient(timeout=5) as client:
        for worker in workers:  # each worker owns one partition and routes the rest to the other
            for visitor in visitors:
                url = f"http://127.0.0.1:{worker.port}/profiles/{workspace_id}/{visitor}"
                response = await client.get(url)
                assert response.status_code == 200, (url, response.text)
                assert response.json()["email"] == f"{visitor}@example.com"
            digest = email_digest(f"{next(iter(visitors))}@example.com").hex()
            index = await client.get(f"http://127.0.0.1:{worker.port}/emails/{workspace_id}/{digest}")
            assert index.json() == {"profile_ids": [next(iter(visitors))]}
            missing = await client.get(f"http://127.0.0.1:{worker.port}/profiles/{workspace_id}/nobody")
            assert missing.status_code == 404
            # faust's own table pages would serve the same profiles to anyone, without routing
            key = f"{workspace_id}:{next(iter(visitors))}"
            for path in ("/table/", f"/table/profiles/{key}/"):
                assert (await client.get(f"http://127.0.0.1:{worker.port}{path}")).status_code == 404
