"""report_applied keeps config_applied at the offset the instance's follower has applied."""

from __future__ import annotations

import asyncio
import contextlib
import uuid

import asyncpg
import pytest

from retarget.config.applied import report_applied
from retarget.config.testing import FakeConfigFollower

pytestmark = pytest.mark.integration


async def _reported(pool: asyncpg.Pool, instance: str, offset: int) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    query = "SELECT feed_offset FROM config_applied WHERE service = 'test' AND instance = $1"
    while await pool.fetchval(query, instance) != offset:
        assert loop.time() < deadline, f"offset {offset} not reported"
        await asyncio.sleep(0.05)


@pytest.mark.parametrize("given", ["dsn", "pool"])
async def test_the_applied_offset_is_upserted_as_it_moves(
    stack: dict[str, str], pool: asyncpg.Pool, given: str
):
    follower = FakeConfigFollower()
    instance = f"i-{uuid.uuid4().hex[:8]}"
    target = stack["RETARGET_DATABASE_URL"] if given == "dsn" else pool
    task = asyncio.create_task(report_applied(target, "test", instance, follower, interval_s=0.05))
    try:
        await _reported(pool, instance, -1)
        follower.applied_offset = 41
        await _reported(pool, instance, 41)
        assert await pool.fetchval("SELECT count(*) FROM config_applied WHERE instance = $1", instance) == 1
    finally:
        task.cancel()
        with contextlib.suppress(asyncio.CancelledError):
            await task
        await pool.execute("DELETE FROM config_applied WHERE instance = $1", instance)
