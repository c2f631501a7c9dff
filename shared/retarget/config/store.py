"""The SQL of config_versions: the only code that knows the table (migration 008).

Writers serialise per object with a transaction-scoped advisory lock on the object's key:
the version insert, and later the publish, of one object never interleave, so the last
record the feed carries for an object is always its newest version.
"""

from __future__ import annotations

from typing import Any

import orjson

from retarget.config.records import ConfigChange, Kind, record_key

_COLUMNS = "version, workspace_id, kind, name, body, deleted, author, created_at"


async def lock_object(conn: Any, workspace_id: str, kind: str, name: str) -> None:
    """Held until the transaction ends; only writers of this object wait."""
    key = b"config:" + record_key(workspace_id, kind, name)
    await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended($1, 0))", key.decode())


async def insert_version(
    conn: Any,
    workspace_id: str,
    kind: Kind,
    name: str,
    body: dict[str, Any] | None,
    *,
    author: str,
    topic: str | None = None,
) -> ConfigChange:
    """`topic`: the change feed it is written for (only that feed's relay publishes it)."""
    row = await conn.fetchrow(
        f"""INSERT INTO config_versions (workspace_id, kind, name, body, deleted, author, feed_topic)
            VALUES ($1, $2, $3, $4::jsonb, $5, $6, $7) RETURNING {_COLUMNS}""",
        workspace_id,
        kind,
        name,
        None if body is None else orjson.dumps(body).decode(),
        body is None,
        author,
        topic,
    )
    return _change(row)


async def newest(conn: Any, workspace_id: str, kind: str, name: str) -> tuple[ConfigChange, bool] | None:
    """The object's newest version and whether the feed has it yet."""
    row = await conn.fetchrow(
        f"""SELECT {_COLUMNS}, published_at IS NOT NULL AS published FROM config_versions
            WHERE workspace_id = $1 AND kind = $2 AND name = $3 ORDER BY version DESC LIMIT 1""",
        workspace_id,
        kind,
        name,
    )
    return (_change(row), bool(row["published"])) if row else None


async def mark_published(conn: Any, version: int, feed_offset: int) -> None:
    await conn.execute(
        "UPDATE config_versions SET published_at = now(), feed_offset = $2 WHERE version = $1",
        version,
        feed_offset,
    )


async def unpublished_objects(
    db: Any, *, topic: str | None = None, workspace_id: str | None = None, limit: int = 1000
) -> list[tuple[str, str, str]]:
    """Objects whose newest version is committed but not on the feed (older ones never matter);
    with `topic`, only versions written for that feed (or before feeds were recorded)."""
    rows = await db.fetch(
        """SELECT v.workspace_id, v.kind, v.name FROM config_versions v
           WHERE v.published_at IS NULL AND ($2::text IS NULL OR v.workspace_id = $2)
             AND ($3::text IS NULL OR v.feed_topic IS NULL OR v.feed_topic = $3) AND NOT EXISTS (
               SELECT 1 FROM config_versions n
               WHERE n.workspace_id = v.workspace_id AND n.kind = v.kind AND n.name = v.name
                 AND n.version > v.version)
           ORDER BY v.version LIMIT $1""",
        limit,
        workspace_id,
        topic,
    )
    return [(r["workspace_id"], r["kind"], r["name"]) for r in rows]


async def current(db: Any, workspace_id: str, kind: str | None = None) -> list[ConfigChange]:
    rows = await db.fetch(
        f"""SELECT {_COLUMNS} FROM config_current
            WHERE workspace_id = $1 AND ($2::text IS NULL OR kind = $2) ORDER BY kind, name""",
        workspace_id,
        kind,
    )
    return [_change(r) for r in rows]


async def history(db: Any, workspace_id: str, kind: str, name: str) -> list[ConfigChange]:
    """Every version of the object, newest first."""
    rows = await db.fetch(
        f"""SELECT {_COLUMNS} FROM config_versions
            WHERE workspace_id = $1 AND kind = $2 AND name = $3 ORDER BY version DESC""",
        workspace_id,
        kind,
        name,
    )
    return [_change(r) for r in rows]


async def workspace_exists(db: Any, workspace_id: str) -> bool:
    return bool(await db.fetchval("SELECT EXISTS (SELECT 1 FROM workspaces WHERE id = $1)", workspace_id))


def _change(row: Any) -> ConfigChange:
    return ConfigChange(
        workspace_id=row["workspace_id"],
        kind=row["kind"],
        name=row["name"],
        version=row["version"],
        deleted=row["deleted"],
        body=None if row["body"] is None else orjson.loads(row["body"]),
        author=row["author"],
        changed_at=row["created_at"],
    )
