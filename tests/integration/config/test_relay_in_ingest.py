"""Ingest runs the relay: a version committed but never published (its writer died) reaches
the change feed once ingest is up, without any writer's help."""

from __future__ import annotations

import asyncio
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest

from retarget.config import store
from retarget.ingest.bootstrap import bootstrap
from retarget.ingest.settings import IngestSettings

pytestmark = pytest.mark.integration


async def test_ingest_publishes_a_version_its_writer_never_published(
    stack: dict[str, str],
    topic_prefix: str,
    config_feed: str,
    workspace: str,
    pool: asyncpg.Pool,
    read_feed: Callable[[], Any],
):
    async with pool.acquire() as conn:  # what a writer killed after its commit leaves
        stored = await store.insert_version(
            conn, workspace, "template", "welcome", {"subject": "Hi", "html": "<p>x</p>"}, author="test"
        )
    services = bootstrap(IngestSettings(topic_prefix=topic_prefix))
    await services.open()
    try:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + 90
        while stored not in [change for _, change in await read_feed()]:
            assert loop.time() < deadline, "the relay did not publish the version"
            await asyncio.sleep(0.5)
    finally:
        await services.close()
    # (the relay also publishes what other tests on this shared database left unpublished)
