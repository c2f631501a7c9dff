"""Ingest against the real Kafka and PostgreSQL: what is posted is what lands on the topic."""

from __future__ import annotations

import asyncio
import gzip
import json
import socket
import time
from datetime import UTC, datetime, timedelta

import httpx
import pytest

from .conftest import ops_url

pytestmark = pytest.mark.integration


def auth(key: str) -> httpx.BasicAuth:
    return httpx.BasicAuth(key, "")


async def test_every_call_type_lands_on_the_events_topic_exactly(ingest_url, tenant, read_events) -> None:
    sent_at = datetime.now(UTC) + timedelta(hours=1)  # a client clock one hour fast
    timestamp = sent_at - timedelta(seconds=30)
    common = {"timestamp": timestamp.isoformat(), "sentAt": sent_at.isoformat()}
    calls = [
        (
            "track",
            {"anonymousId": "anon-1", "event": "Product Viewed", "properties": {"sku": "S1", "price": 9.5}},
        ),
        ("identify", {"anonymousId": "anon-1", "userId": "user-1", "traits": {"email": "a@example.com"}}),
        ("page", {"anonymousId": "anon-1", "name": "Home", "properties": {"url": "https://shop/"}}),
        ("screen", {"userId": "user-2", "name": "Cart"}),
        ("group", {"userId": "user-2", "groupId": "org-1", "traits": {"plan": "pro"}}),
        ("alias", {"userId": "user-3", "previousId": "anon-9"}),
    ]
    async with httpx.AsyncClient(base_url=ingest_url, auth=auth(tenant.write_key)) as client:
        for index, (kind, body) in enumerate(calls):
            response = await client.post(f"/v1/{kind}", json=body | common | {"messageId": f"m-{index}"})
            assert (response.status_code, response.json()) == (200, {"success": True})
    records = sorted(await read_events(len(calls)), key=lambda kv: kv[1].message_id)

    assert [key for key, _ in records] == [
        f"{tenant.workspace_id}:{visitor}".encode()
        for visitor in ("anon-1", "anon-1", "anon-1", "user-2", "user-2", "user-3")
    ]
    track = records[0][1]
    assert (track.type, track.workspace_id, track.event) == ("track", tenant.workspace_id, "Product Viewed")
    assert track.properties == {"sku": "S1", "price": 9.5} and track.anonymous_id == "anon-1"
    # skew-corrected: 30 s before it was received, whatever the client's clock said
    assert timedelta(seconds=29) < track.received_at - track.timestamp < timedelta(seconds=31)
    assert track.original_timestamp == timestamp and track.sent_at == sent_at
    assert abs(track.received_at - datetime.now(UTC)) < timedelta(seconds=30)
    by_type = {event.type: event for _, event in records}
    assert (
        by_type["identify"].traits == {"email": "a@example.com"} and by_type["identify"].user_id == "user-1"
    )
    assert by_type["page"].name == "Home" and by_type["screen"].name == "Cart"
    assert by_type["group"].group_id == "org-1" and by_type["alias"].previous_id == "anon-9"


async def test_gzip_batch_with_a_bad_event_is_partly_accepted(ingest_url, tenant, read_events) -> None:
    batch = {
        "batch": [
            {"type": "track", "userId": "u1", "event": "Order Completed", "messageId": "ok-1"},
            {"type": "track", "event": "no identity", "messageId": "bad-1"},
            {"type": "identify", "userId": "u1", "traits": {"name": "Ann"}, "messageId": "ok-2"},
        ],
        "writeKey": tenant.write_key,
    }
    async with httpx.AsyncClient(base_url=ingest_url) as client:
        response = await client.post(
            "/v1/batch",
            content=gzip.compress(json.dumps(batch).encode()),
            headers={"Content-Encoding": "gzip", "Content-Type": "application/json"},
        )
    assert response.status_code == 200
    assert response.json()["rejected"] == [
        {
            "index": 1,
            "code": "invalid_field",
            "field": "userId",
            "message": "an event needs a userId or an anonymousId",
        }
    ]
    events = [event for _, event in await read_events(2)]
    assert sorted(e.message_id for e in events) == ["ok-1", "ok-2"]


async def test_a_revoked_key_gets_401_once_the_cache_expires(ingest_url, tenant) -> None:
    from retarget.cli.main import main as cli

    body = {"userId": "u", "event": "e"}
    async with httpx.AsyncClient(base_url=ingest_url, auth=auth(tenant.write_key)) as client:
        assert (await client.post("/v1/track", json=body)).status_code == 200
        assert await asyncio.to_thread(cli, ["write-key", "revoke", tenant.write_key]) == 0
        await asyncio.sleep(0.6)  # key_cache_ttl_s is 0.5 in these tests
        response = await client.post("/v1/track", json=body)
    assert response.status_code == 401 and response.json()["code"] == "unauthorized"


async def test_workspaces_are_isolated(ingest_url, make_tenant, read_events) -> None:
    first, second = await make_tenant(), await make_tenant()
    async with httpx.AsyncClient(base_url=ingest_url) as client:
        for tenant in (first, second):
            # the body can't choose the workspace: the key decides
            body = {"anonymousId": "same-visitor", "event": "e", "workspaceId": "someone-else"}
            response = await client.post("/v1/track", json=body, auth=auth(tenant.write_key))
            assert response.status_code == 200
    records = await read_events(2)
    assert sorted((key, event.workspace_id) for key, event in records) == sorted(
        [
            (f"{first.workspace_id}:same-visitor".encode(), first.workspace_id),
            (f"{second.workspace_id}:same-visitor".encode(), second.workspace_id),
        ]
    )


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


async def test_dead_kafka_is_a_prompt_503_with_retry_after(serve, ingest_settings, tenant) -> None:
    settings = ingest_settings.model_copy(
        update={
            "kafka_bootstrap": f"127.0.0.1:{free_port()}",
            "port": free_port(),
            "kafka_connect_wait_s": 0.5,
        }
    )
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, auth=auth(tenant.write_key)) as client:
        started = time.monotonic()
        response = await client.post("/v1/track", json={"userId": "u", "event": "e"})
        elapsed = time.monotonic() - started
        ready = await client.get(f"{ops_url(settings)}/readyz")
    assert response.status_code == 503 and response.headers["Retry-After"] == str(settings.retry_after_s)
    assert elapsed < settings.publish_timeout_s + 10  # bounded, with room for a loaded machine
    # which dependency is down, never the exception's text (hosts, library internals)
    assert ready.status_code == 503 and ready.json() == {"ready": False, "problems": {"kafka": "down"}}


async def test_dead_postgres_is_a_503_not_a_401(serve, ingest_settings, tenant) -> None:
    settings = ingest_settings.model_copy(
        update={
            "database_url": f"postgresql://retarget@127.0.0.1:{free_port()}/retarget",
            "port": free_port(),
        }
    )
    async with serve(settings) as url, httpx.AsyncClient(base_url=url, auth=auth(tenant.write_key)) as client:
        response = await client.post("/v1/track", json={"userId": "u", "event": "e"})
    assert response.status_code == 503 and "Retry-After" in response.headers


async def test_ready_and_metrics_on_the_ops_port_only(ingest_url, ingest_settings) -> None:
    async with httpx.AsyncClient(base_url=ops_url(ingest_settings)) as ops:
        assert (await ops.get("/readyz")).json() == {"ready": True, "problems": {}}
        assert "retarget_ingest_requests_total" in (await ops.get("/metrics")).text
        assert (await ops.get("/healthz")).status_code == 200
        assert (await ops.post("/v1/track", json={"userId": "u", "event": "e"})).status_code == 404
    async with httpx.AsyncClient(base_url=ingest_url) as public:
        for path in ("/metrics", "/readyz", "/openapi.json"):
            response = await public.get(path)
            assert response.status_code == 404 and "retarget_" not in response.text, path
        assert (await public.get("/healthz")).status_code == 200
