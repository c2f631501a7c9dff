"""What the `campaigns` and `templates` commands share: a ConfigService on the usual
settings, the workspace's effective objects (its own over the bundled defaults), and the
two-phase apply (every object validated before any is stored)."""

from __future__ import annotations

import getpass
import sys
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager
from dataclasses import dataclass
from typing import Any

from retarget.config.records import ConfigChange, Kind


@dataclass(frozen=True)
class Effective:
    """One object as the workspace sees it: its own newest version, or the bundled default."""

    name: str
    source: str  # "workspace" or "default"
    version: int | None  # None: the bundled default
    body: dict[str, Any]


def author() -> str:
    return f"cli:{getpass.getuser()}"


def fail(message: str) -> None:
    print(f"error: {message}", file=sys.stderr)


@asynccontextmanager
async def config_service(settings: Any = None) -> AsyncIterator[Any]:
    """Yields a ConfigService on RETARGET_DATABASE_URL and RETARGET_KAFKA_BOOTSTRAP (or
    `settings`, a CommonSettings), or None after printing why one of them can't be reached."""
    import asyncpg

    from retarget.common.kafka import ensure_topics, make_producer
    from retarget.common.settings import CommonSettings
    from retarget.config.records import config_topic
    from retarget.config.service import ConfigService

    settings = settings or CommonSettings()
    topic = config_topic(settings.topic_prefix)
    try:
        pool = await asyncpg.create_pool(settings.database_url, min_size=1, max_size=2, timeout=10)
    except (OSError, asyncpg.PostgresError, TimeoutError) as exc:
        fail(
            f"cannot reach PostgreSQL at RETARGET_DATABASE_URL ({exc}): start the local stack with "
            "`retarget devstack up` and run `retarget db migrate`"
        )
        yield None
        return
    producer = make_producer(settings)
    try:
        try:
            await ensure_topics(settings, [topic], timeout_s=20)
            await producer.start()
        except Exception as exc:  # aiokafka raises several unrelated types for "no broker"
            fail(
                f"cannot reach Kafka at {settings.kafka_bootstrap} ({exc!r}): start the local stack "
                "with `retarget devstack up`, or point RETARGET_KAFKA_BOOTSTRAP at a cluster"
            )
            yield None
            return
        yield ConfigService(pool, producer, topic)
    finally:
        await producer.stop()
        await pool.close()


def effective(current: list[ConfigChange], kind: Kind) -> dict[str, Effective]:
    """name -> what the workspace uses: its own newest version (`current`, from ConfigService or
    store.current) over the bundled default of that name; a deleted one is left out (deleting
    hides the default)."""
    from retarget.config.defaults import bundled_campaigns, bundled_templates

    bundled = bundled_campaigns() if kind == "campaign" else bundled_templates()
    found = {name: Effective(name, "default", None, dict(body)) for name, body in bundled.items()}
    for change in current:
        if change.kind != kind:
            continue
        if change.deleted:
            found.pop(change.name, None)
        else:
            found[change.name] = Effective(change.name, "workspace", change.version, change.body or {})
    return dict(sorted(found.items()))


async def apply_all(service: Any, workspace_id: str, kind: Kind, objects: list[tuple[str, str, Any]]) -> int:
    """objects: (where it came from, name, body). Validates every one first (dry run) and
    stores nothing unless all are valid; exit status."""
    from retarget.common.write_keys import UnknownWorkspace
    from retarget.config.validation import ConfigInvalid

    problems = []
    for origin, name, body in objects:
        try:
            await service.apply(workspace_id, kind, name, body, author=author(), dry_run=True)
        except ConfigInvalid as exc:
            problems.append(f"{origin}: {exc}")
        except UnknownWorkspace:
            fail(f"no workspace {workspace_id!r}: create it first with `retarget workspace create`")
            return 1
    names = [name for _, name, _ in objects]
    problems += [
        f"{kind} {n}: given more than once" for n in sorted({n for n in names if names.count(n) > 1})
    ]
    if problems:
        for problem in problems:
            fail(problem)
        fail(f"nothing was stored ({len(problems)} problem(s))")
        return 1
    for _, name, body in objects:
        change = await service.apply(workspace_id, kind, name, body, author=author())
        print(f"applied {kind} {name}: version {change.version}")
    return 0


async def listed(workspace_id: str, kind: Kind) -> tuple[int, dict[str, Effective]]:
    """What `list` shows: (0, the workspace's effective objects of `kind`), or the exit code after
    saying why not (2: PostgreSQL away, 1: no such workspace)."""
    from retarget.cli._db import connection
    from retarget.config import store

    async with connection() as conn:
        if conn is None:
            return 2, {}
        if not await store.workspace_exists(conn, workspace_id):
            fail(f"no workspace {workspace_id!r}: create it first with `retarget workspace create`")
            return 1, {}
        return 0, effective(await store.current(conn, workspace_id, kind), kind)
