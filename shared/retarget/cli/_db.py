"""One PostgreSQL connection for a CLI command, with a helpful message when there is none."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from typing import Any


@asynccontextmanager
async def connection() -> AsyncIterator[Any]:
    """Yields an asyncpg connection, or None after printing why PostgreSQL can't be reached."""
    import asyncpg

    from retarget.common.settings import CommonSettings

    settings = CommonSettings()
    try:
        conn = await asyncpg.connect(settings.database_url, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        print(
            f"cannot reach PostgreSQL at RETARGET_DATABASE_URL ({exc}): start the local stack with "
            "`retarget devstack up` and run `retarget db migrate`, or point RETARGET_DATABASE_URL at a server"
        )
        yield None
        return
    try:
        yield conn
    finally:
        await conn.close()
