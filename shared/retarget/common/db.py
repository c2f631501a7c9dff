"""PostgreSQL: an asyncpg pool and versioned SQL migrations.

Migrations are the files migrations/NNN_name.sql, applied in order, each once, each in its
own transaction, recorded in schema_migrations. An advisory lock makes concurrent runs
(several services starting together) safe: the second waits, then finds nothing to do.
"""

from __future__ import annotations

import hashlib
import logging
from importlib import resources

import asyncpg

from retarget.common.settings import CommonSettings

log = logging.getLogger(__name__)

_MIGRATION_LOCK = 0x7265_7461_7267  # "retarg": any constant shared by every migrator


async def create_pool(settings: CommonSettings) -> asyncpg.Pool:
    pool = await asyncpg.create_pool(
        settings.database_url, min_size=settings.db_pool_min, max_size=settings.db_pool_max, timeout=10
    )
    assert pool is not None
    return pool


def migration_files() -> list[tuple[str, str]]:
    """(version, sql) for every bundled migration, in order."""
    folder = resources.files("retarget.common") / "migrations"
    files = sorted((f for f in folder.iterdir() if f.name.endswith(".sql")), key=lambda f: f.name)
    return [(f.name.removesuffix(".sql"), f.read_text()) for f in files]


async def migrate(dsn: str) -> list[str]:
    """Apply pending migrations; return the versions applied now."""
    conn = await asyncpg.connect(dsn, timeout=10)
    applied_now: list[str] = []
    try:
        await conn.execute("SELECT pg_advisory_lock($1)", _MIGRATION_LOCK)
        await conn.execute(
            """CREATE TABLE IF NOT EXISTS schema_migrations (
                   version text PRIMARY KEY,
                   checksum text NOT NULL,
                   applied_at timestamptz NOT NULL DEFAULT now())"""
        )
        done = {r["version"]: r["checksum"] for r in await conn.fetch("SELECT * FROM schema_migrations")}
        for version, sql in migration_files():
            checksum = hashlib.sha256(sql.encode()).hexdigest()
            if version in done:
                if done[version] != checksum:
                    raise RuntimeError(
                        f"migration {version} was changed after it was applied; "
                        "add a new migration file instead of editing an applied one"
                    )
                continue
            async with conn.transaction():
                await conn.execute(sql)
                await conn.execute(
                    "INSERT INTO schema_migrations (version, checksum) VALUES ($1, $2)", version, checksum
                )
            applied_now.append(version)
            log.info("applied migration", extra={"version": version})
    finally:
        await conn.execute("SELECT pg_advisory_unlock($1)", _MIGRATION_LOCK)
        await conn.close()
    return applied_now
