"""Fixtures for ingest's integration tests: a running ingest server on a free port, a
provisioned workspace with a write key, and a reader of the events topic.

The stack itself (`stack`, `topic_prefix`, `workspace_id`) comes from tests/conftest.py.
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Awaitable, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from dataclasses import dataclass

import asyncpg
import msgspec
import pytest
import uvicorn

from retarget.common.identity import email_digest
from retarget.common.kafka import make_consumer
from retarget.common.schemas import TrackedEvent
from retarget.common.secret_keys import SecretKeyStore
from retarget.common.topics import Topics
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.common.write_keys import WriteKeyStore
from retarget.ingest.main import create_app
from retarget.ingest.server import bind_sockets, uvicorn_options
from retarget.ingest.settings import IngestSettings


def free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return int(sock.getsockname()[1])


@asynccontextmanager
async def serving(settings: IngestSettings) -> AsyncIterator[str]:
    """Run the real app as `python -m retarget.ingest` does (same uvicorn options, the public
    and the ops socket) on settings.port and settings.ingest_ops_port; yields the public URL."""
    options = uvicorn_options(settings) | {"host": "127.0.0.1", "lifespan": "on"}
    config = uvicorn.Config(create_app(settings), **options)  # type: ignore[arg-type]
    server = uvicorn.Server(config)
    task = asyncio.create_task(server.serve(sockets=bind_sockets(config, settings)))
    while not server.started:
        if task.done():
            task.result()  # raises what stopped it
        await asyncio.sleep(0.02)
    try:
        yield f"http://127.0.0.1:{settings.port}"
    finally:
        server.should_exit = True
        await task


@pytest.fixture
def ingest_settings(stack: dict[str, str], topic_prefix: str) -> IngestSettings:
    return IngestSettings(
        topic_prefix=topic_prefix,
        topic_partitions=3,
        port=free_port(),
        ingest_ops_port=free_port(),
        key_cache_ttl_s=0.5,  # so a revocation shows within the test
        kafka_connect_wait_s=20,
    )


def ops_url(settings: IngestSettings) -> str:
    """Where a served ingest answers /metrics and /readyz."""
    return f"http://127.0.0.1:{settings.ingest_ops_port}"


@pytest.fixture
def serve() -> Callable[[IngestSettings], AbstractAsyncContextManager[str]]:
    """`async with serve(settings) as url:` runs another ingest (a test with special settings)."""
    return serving


@pytest.fixture
async def ingest_url(ingest_settings: IngestSettings) -> AsyncIterator[str]:
    async with serving(ingest_settings) as url:
        yield url


@dataclass(frozen=True)
class Tenant:
    workspace_id: str
    write_key: str


@pytest.fixture
async def make_tenant(stack: dict[str, str]) -> AsyncIterator[Callable[[], Awaitable[Tenant]]]:
    """Creates a workspace with a random id and one write key, in the real database."""
    conn = await asyncpg.connect(IngestSettings().database_url)

    async def make() -> Tenant:
        workspace_id = f"ws-{uuid.uuid4().hex[:8]}"
        await WorkspaceStore(conn).upsert(
            Workspace(
                id=workspace_id,
                name="Ingest test",
                from_name="Shop",
                from_email="shop@example.com",
                postal_address="1 Test Street, Testville",
            )
        )
        return Tenant(workspace_id, await WriteKeyStore(conn).create(workspace_id))

    yield make
    await conn.close()


@pytest.fixture
async def tenant(make_tenant: Callable[[], Awaitable[Tenant]]) -> Tenant:
    return await make_tenant()


EventReader = Callable[[int], Awaitable[list[tuple[bytes, TrackedEvent]]]]


@pytest.fixture
def read_events(ingest_settings: IngestSettings) -> EventReader:
    """read_events(n): the first n records of this test's events topic, as (key, event)."""

    async def read(count: int, timeout_s: float = 20.0) -> list[tuple[bytes, TrackedEvent]]:
        topic = Topics(ingest_settings.topic_prefix).events
        consumer = make_consumer(ingest_settings, topic, group_id=f"test-{uuid.uuid4().hex[:8]}")
        decoder = msgspec.json.Decoder(TrackedEvent)
        found: list[tuple[bytes, TrackedEvent]] = []
        await consumer.start()
        try:
            async with asyncio.timeout(timeout_s):
                while len(found) < count:
                    for records in (await consumer.getmany(timeout_ms=500)).values():
                        found.extend((r.key, decoder.decode(r.value)) for r in records)
        finally:
            await consumer.stop()
        return found

    return read


async def suppression_of(workspace_id: str, address: str) -> asyncpg.Record | None:
    """The workspace's suppression row for `address` (reason, source), if any."""
    conn = await asyncpg.connect(IngestSettings().database_url)
    try:
        return await conn.fetchrow(
            "SELECT reason, source FROM suppressions WHERE workspace_id = $1 AND email_hash = $2",
            workspace_id,
            email_digest(address),
        )
    finally:
        await conn.close()


@pytest.fixture
def secret_key(stack: dict[str, str]) -> Callable[..., Awaitable[str]]:
    """secret_key(workspace_id, *scopes): a new secret key in the real database."""

    async def create(workspace_id: str, *scopes: str) -> str:
        conn = await asyncpg.connect(IngestSettings().database_url)
        try:
            return await SecretKeyStore(conn).create(workspace_id, list(scopes), label="test")
        finally:
            await conn.close()

    return create
