"""ConfigService on the real PostgreSQL and Kafka: versions, history, validation before any
write, the legacy tables, the relay after a crash, and concurrent writers of one object."""

from __future__ import annotations

import asyncio
import os
import sys
from collections.abc import Callable
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaProducer

from retarget.common.kafka import ensure_topics
from retarget.common.settings import CommonSettings
from retarget.common.write_keys import UnknownWorkspace
from retarget.config import store
from retarget.config.follower import ConfigFollower
from retarget.config.records import ConfigChange, config_topic
from retarget.config.relay import relay_once
from retarget.config.service import ConfigNotFound, ConfigService
from retarget.config.validation import ConfigInvalid

pytestmark = pytest.mark.integration

WELCOME = {"subject": "Hello {{ recipient.first_name }}", "html": "<p>Hi</p>", "text": None}


async def test_versions_increase_and_history_keeps_old_bodies(
    service: ConfigService, workspace: str, read_feed: Callable[[], Any], pool: asyncpg.Pool
):
    first = await service.apply(workspace, "template", "welcome", WELCOME, author="test")
    second = await service.apply(
        workspace, "template", "welcome", WELCOME | {"subject": "Again"}, author="t2"
    )

    assert second.version > first.version > 0
    again = await service.apply(workspace, "template", "welcome", WELCOME | {"subject": "Again"}, author="t3")
    assert again == second  # unchanged: no new version, nothing new on the feed
    history = await service.history(workspace, "template", "welcome")
    assert [(c.version, c.body["subject"] if c.body else None) for c in history] == [
        (second.version, "Again"),
        (first.version, "Hello {{ recipient.first_name }}"),
    ]
    assert await service.current(workspace, "template") == [second]
    feed = await read_feed()
    assert [change.version for _, change in feed] == [first.version, second.version]
    offsets = await pool.fetch(
        "SELECT feed_offset FROM config_versions WHERE workspace_id = $1 AND published_at IS NOT NULL"
        " ORDER BY version",
        workspace,
    )
    assert [r["feed_offset"] for r in offsets] == [offset for offset, _ in feed]


async def test_an_invalid_body_stores_nothing_and_names_the_field(
    service: ConfigService, workspace: str, read_feed: Callable[[], Any], pool: asyncpg.Pool
):
    bad = {"name": "abandoned_cart", "entry": {"event": "Product Added"}, "wait": "soon"}
    with pytest.raises(ConfigInvalid, match="campaign abandoned_cart: field wait: 'soon' is not a duration"):
        await service.apply(workspace, "campaign", "abandoned_cart", bad, author="test")
    with pytest.raises(ConfigInvalid, match=r"template welcome: .*html or text is required"):
        await service.apply(workspace, "template", "welcome", {"subject": "Hi"}, author="test")

    assert await pool.fetchval("SELECT count(*) FROM config_versions WHERE workspace_id = $1", workspace) == 0
    assert await read_feed() == []


async def test_a_workspace_that_does_not_exist_gets_nothing(service: ConfigService, workspace_id: str):
    with pytest.raises(UnknownWorkspace):
        await service.apply(workspace_id, "template", "welcome", WELCOME, author="test")


async def test_dry_run_validates_and_stores_nothing(
    service: ConfigService, workspace: str, pool: asyncpg.Pool
):
    checked = await service.apply(workspace, "template", "welcome", WELCOME, author="t", dry_run=True)
    assert checked.version == 0 and checked.body == WELCOME
    assert await pool.fetchval("SELECT count(*) FROM config_versions WHERE workspace_id = $1", workspace) == 0


async def test_identity_and_policy_are_written_to_the_tables_the_services_read(
    service: ConfigService, workspace: str, pool: asyncpg.Pool
):
    identity = {
        "from_name": "Acme",
        "from_email": "news@acme.example",
        "postal_address": "2 Road, Town",
        "timezone": "Europe/Paris",
        "link_domains": ["Acme.Example"],
    }
    await service.apply(workspace, "identity", "", identity, author="test")
    policy = {
        "consent_mode": "opt_in",
        "quiet_hours": {"start": "21:00", "end": "08:00"},
        "rate": {"per_s": 5, "burst": 10},
        "caps": [{"campaign": "*", "max_messages": 3, "window": "7d"}],
    }
    await service.apply(workspace, "policy", "", policy, author="test")

    row = await pool.fetchrow("SELECT * FROM workspaces WHERE id = $1", workspace)
    assert (row["from_email"], row["timezone"], row["link_domains"], row["consent_mode"]) == (
        "news@acme.example",
        "Europe/Paris",
        ["acme.example"],
        "opt_in",
    )
    sending = await pool.fetchrow("SELECT * FROM sending_policies WHERE workspace_id = $1", workspace)
    assert (
        str(sending["quiet_start"]),
        str(sending["quiet_end"]),
        sending["rate_per_s"],
        sending["rate_burst"],
    ) == ("21:00:00", "08:00:00", 5.0, 10)
    caps = await pool.fetch(
        "SELECT campaign, max_messages, window_s FROM frequency_caps WHERE workspace_id = $1", workspace
    )
    assert [tuple(r) for r in caps] == [("*", 3, 7 * 86400)]

    await service.delete(workspace, "policy", "", author="test")  # back to the sender's defaults
    assert await pool.fetchval("SELECT consent_mode FROM workspaces WHERE id = $1", workspace) == "opt_out"
    assert (
        await pool.fetchval("SELECT count(*) FROM sending_policies WHERE workspace_id = $1", workspace) == 0
    )
    assert await pool.fetchval("SELECT count(*) FROM frequency_caps WHERE workspace_id = $1", workspace) == 0
    with pytest.raises(ConfigInvalid, match="identity"):
        await service.delete(workspace, "identity", "", author="test")


async def test_deleting_hides_a_bundled_default_and_unknown_objects_are_not_found(
    service: ConfigService, workspace: str
):
    marker = await service.delete(workspace, "campaign", "abandoned_cart", author="test")
    assert marker.deleted and marker.body is None
    assert await service.delete(workspace, "campaign", "abandoned_cart", author="test") == marker
    with pytest.raises(ConfigNotFound):
        await service.delete(workspace, "template", "never_written", author="test")
    with pytest.raises(ConfigInvalid, match="unknown kind"):
        await service.delete(workspace, "sandwich", "x", author="test")  # type: ignore[arg-type]


CRASHING_WRITER = """
import asyncio, sys
import asyncpg
from aiokafka import AIOKafkaProducer
from retarget.config.service import ConfigService

async def main(dsn, bootstrap, topic, workspace):
    pool = await asyncpg.create_pool(dsn, min_size=1, max_size=2)
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    body = {"subject": "Hi", "html": "<p>crash</p>"}
    await ConfigService(pool, producer, topic).apply(workspace, "template", "welcome", body, author="crash")

asyncio.run(main(*sys.argv[1:]))
"""


async def test_a_crash_between_commit_and_publish_is_healed_by_the_relay(
    stack: dict[str, str],
    service: ConfigService,
    config_feed: str,
    workspace: str,
    read_feed: Callable[[], Any],
    pool: asyncpg.Pool,
):
    writer = await asyncio.create_subprocess_exec(
        sys.executable,
        "-c",
        CRASHING_WRITER,
        stack["RETARGET_DATABASE_URL"],
        stack["RETARGET_KAFKA_BOOTSTRAP"],
        config_feed,
        workspace,
        env=os.environ | {"RETARGET_CRASH_AT": "config.after_commit"},
    )
    assert await asyncio.wait_for(writer.wait(), 120) == -9  # SIGKILLed at the crash point
    [stored] = await service.history(workspace, "template", "welcome")
    assert (
        await pool.fetchval("SELECT published_at FROM config_versions WHERE version = $1", stored.version)
        is None
    )
    assert await read_feed() == []

    assert await relay_once(service, pool, workspace_id=workspace) == 1
    assert [change for _, change in await read_feed()] == [stored]
    assert await relay_once(service, pool, workspace_id=workspace) == 0  # published: never again
    assert not await service.publish_newest(workspace, "template", "welcome")  # a relay racing a writer
    assert len(await read_feed()) == 1


class GatedProducer:
    """The real producer, whose first send waits until the test opens the gate."""

    def __init__(self, producer: AIOKafkaProducer) -> None:
        self._producer = producer
        self.gate = asyncio.Event()
        self.waiting = asyncio.Event()

    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> Any:
        if not self.gate.is_set():
            self.waiting.set()
            await self.gate.wait()
        return await self._producer.send_and_wait(topic, value, key=key)


async def test_two_concurrent_writers_of_one_object_leave_the_newest_last_on_the_feed(
    service: ConfigService,
    producer: AIOKafkaProducer,
    pool: asyncpg.Pool,
    config_feed: str,
    workspace: str,
    read_feed: Callable[[], Any],
):
    gated = GatedProducer(producer)
    slow = ConfigService(pool, gated, config_feed)  # type: ignore[arg-type]
    first = asyncio.create_task(slow.apply(workspace, "template", "welcome", WELCOME, author="slow"))
    await asyncio.wait_for(gated.waiting.wait(), 60)  # committed, its publish held
    second = asyncio.create_task(
        service.apply(workspace, "template", "welcome", WELCOME | {"subject": "Later"}, author="fast")
    )
    await _until_done_or_waiting_for_a_lock(second, pool, workspace)
    gated.gate.set()
    await asyncio.wait_for(asyncio.gather(first, second), 60)

    newest = (await service.history(workspace, "template", "welcome"))[0]
    feed = [change for _, change in await read_feed()]
    assert feed[-1] == newest and newest.version == second.result().version


async def _until_done_or_waiting_for_a_lock(
    task: asyncio.Task[Any], pool: asyncpg.Pool, workspace: str
) -> None:
    """The second writer either finished (nothing made it wait) or waits on an advisory lock."""
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not task.done():
        waiting = await pool.fetchval(
            """SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
               AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)""",
            f"config:{workspace}/template/welcome",
        )
        if waiting:
            return
        assert loop.time() < deadline, "the second writer neither finished nor waited"
        await asyncio.sleep(0.05)


async def test_a_running_follower_sees_what_the_service_applies_and_deletes(
    stack: dict[str, str], service: ConfigService, config_feed: str, workspace: str
):
    follower = ConfigFollower(stack["RETARGET_KAFKA_BOOTSTRAP"], config_feed, kinds=["template"])
    await follower.start()
    try:
        applied = await service.apply(workspace, "template", "welcome", WELCOME, author="test")
        await _until(lambda: follower.current(workspace, "template", "welcome") == applied)
        deleted = await service.delete(workspace, "template", "welcome", author="test")
        await _until(lambda: follower.current(workspace, "template", "welcome") == deleted)
        assert deleted.deleted and deleted.version > applied.version
    finally:
        await follower.stop()


async def _until(check: Callable[[], bool]) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not check():
        assert loop.time() < deadline, "the follower did not see the change"
        await asyncio.sleep(0.05)


async def test_one_object_the_feed_refuses_does_not_hold_up_the_relay(
    service: ConfigService, workspace: str, pool: asyncpg.Pool, read_feed: Callable[[], Any]
):
    async with pool.acquire() as conn:  # stored before the size limit existed: Kafka refuses it
        await store.insert_version(
            conn, workspace, "template", "huge", {"subject": "Hi", "html": "x" * 2_000_000}, author="old"
        )
        fine = await store.insert_version(conn, workspace, "template", "fine", WELCOME, author="test")

    try:
        assert await relay_once(service, pool, workspace_id=workspace) == 1
        assert [change for _, change in await read_feed()] == [fine]
    finally:  # never published: other tests' relays on this shared database would retry it forever
        await pool.execute("DELETE FROM config_versions WHERE workspace_id = $1 AND name = 'huge'", workspace)


async def test_a_relay_of_another_topic_prefix_does_not_take_this_feeds_unpublished_version(
    stack: dict[str, str],
    service: ConfigService,
    producer: AIOKafkaProducer,
    pool: asyncpg.Pool,
    topic_prefix: str,
    workspace: str,
    read_feed: Callable[[], Any],
):
    async with pool.acquire() as conn:  # what a writer SIGKILLed at config.after_commit leaves
        stored = await store.insert_version(
            conn, workspace, "template", "welcome", WELCOME, author="crash", topic=service.topic
        )
    other_topic = config_topic(f"{topic_prefix}other")  # another deployment sharing the database
    await ensure_topics(CommonSettings(kafka_bootstrap=stack["RETARGET_KAFKA_BOOTSTRAP"]), [other_topic])
    await relay_once(ConfigService(pool, producer, other_topic), pool, workspace_id=workspace)

    await relay_once(service, pool, workspace_id=workspace)
    assert [change for _, change in await read_feed()] == [stored]


@pytest.mark.parametrize(
    "policy",
    [
        {"rate": {"per_s": 1, "burst": 2**31}},  # rate_burst integer
        {
            "caps": [{"max_messages": 1, "window": "1s"}, {"max_messages": 2, "window": "1.5s"}]
        },  # window_s key
    ],
)
async def test_a_policy_the_sender_tables_cant_hold_is_refused_not_a_database_error(
    service: ConfigService, workspace: str, policy: dict[str, Any]
):
    """Before: asyncpg's DataError / UniqueViolationError, which ingest answers as a 503 "retry"."""
    with pytest.raises(ConfigInvalid, match="policy: "):
        await service.apply(workspace, "policy", "", policy, author="test")
    assert await service.history(workspace, "policy", "") == []


async def _until_waiting_for_the_lock_of(task: asyncio.Task[Any], pool: asyncpg.Pool, key: str) -> None:
    loop = asyncio.get_running_loop()
    deadline = loop.time() + 60
    while not task.done():
        waiting = await pool.fetchval(
            """SELECT count(*) FROM pg_locks WHERE locktype = 'advisory' AND NOT granted
               AND ((classid::bigint << 32) | objid::bigint) = hashtextextended($1, 0)""",
            key,
        )
        if waiting:
            return
        assert loop.time() < deadline, "the second writer neither finished nor waited"
        await asyncio.sleep(0.05)


async def test_concurrent_identity_writers_leave_the_newest_version_in_the_workspaces_table(
    service: ConfigService, workspace: str, pool: asyncpg.Pool, monkeypatch: pytest.MonkeyPatch
):
    """The object's lock covers the version insert and the legacy-table write: without it a
    first writer slowed after its insert lets a second insert a newer version and write the
    table, and the first then overwrites the table with the older identity."""
    import retarget.config.service as service_module

    real = service_module.write_legacy_tables
    gate, waiting, calls = asyncio.Event(), asyncio.Event(), []

    async def slowed_first(conn: Any, change: Any) -> None:
        calls.append(change.version)
        if len(calls) == 1:
            waiting.set()
            await gate.wait()
        await real(conn, change)

    monkeypatch.setattr(service_module, "write_legacy_tables", slowed_first)
    identity = {"from_email": "news@acme.example", "postal_address": "2 Road, Town"}
    first = asyncio.create_task(
        service.apply(workspace, "identity", "", identity | {"from_name": "First"}, author="a")
    )
    await asyncio.wait_for(waiting.wait(), 60)
    second = asyncio.create_task(
        service.apply(workspace, "identity", "", identity | {"from_name": "Second"}, author="b")
    )
    await _until_waiting_for_the_lock_of(second, pool, f"config:{workspace}/identity/")
    gate.set()
    await asyncio.wait_for(asyncio.gather(first, second), 60)

    newest = (await service.history(workspace, "identity", ""))[0]
    table = await pool.fetchval("SELECT from_name FROM workspaces WHERE id = $1", workspace)
    assert newest.body is not None and table == newest.body["from_name"] == "Second"


class KafkaAway:
    async def send_and_wait(self, topic: str, value: bytes, key: bytes) -> Any:
        from aiokafka.errors import KafkaConnectionError

        raise KafkaConnectionError("no broker")


async def test_kafka_away_after_the_commit_keeps_the_version_for_the_relay(
    service: ConfigService, workspace: str, pool: asyncpg.Pool, config_feed: str
):
    """The write succeeds (stored, not yet published); the relay publishes it later."""
    writer = ConfigService(pool, KafkaAway(), config_feed)  # type: ignore[arg-type]
    change = await writer.apply(workspace, "template", "welcome", WELCOME, author="test")
    assert [c.version for c in await service.history(workspace, "template", "welcome")] == [change.version]


async def test_an_older_unpublished_version_is_not_relayed_once_a_newer_one_is_on_the_feed(
    pool: asyncpg.Pool, workspace: str
):
    """Only the newest version of an object is ever published: older unpublished versions stay
    unpublished forever and must not fill the relay's page (LIMIT) ahead of real work."""
    async with pool.acquire() as conn, conn.transaction():
        await store.insert_version(conn, workspace, "template", "welcome", WELCOME, author="crash")
        newer = await store.insert_version(
            conn, workspace, "template", "welcome", WELCOME | {"text": "hi"}, author="test"
        )
        await store.mark_published(conn, newer.version, 0)
    assert await store.unpublished_objects(pool, workspace_id=workspace) == []


async def test_create_only_lets_exactly_one_of_two_concurrent_writers_take_a_name(
    service: ConfigService, workspace: str
):
    """What keeps two concurrent DKIM generations from overwriting one selector's key: the check
    runs under the object's lock, so the second writer sees the first's version."""
    results = await asyncio.gather(
        *(
            service.apply(
                workspace,
                "template",
                "welcome",
                {**WELCOME, "subject": f"take {n}"},
                author="t",
                create_only=True,
            )
            for n in range(2)
        ),
        return_exceptions=True,
    )
    taken = [r for r in results if isinstance(r, ConfigChange)]
    refused = [r for r in results if isinstance(r, ConfigInvalid)]
    assert (len(taken), len(refused)) == (1, 1), results
    assert "already used" in str(refused[0])
    assert [c.body for c in await service.history(workspace, "template", "welcome")] == [taken[0].body]
