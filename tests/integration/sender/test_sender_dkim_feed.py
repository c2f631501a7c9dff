"""DKIM keys from the configuration feed, on the real stack: Kafka (the feed and the outbound
topic), PostgreSQL (the send log) and the stack's SMTP capture (what was really sent)."""

from __future__ import annotations

import asyncio
import base64
import email
import json
import os
import re
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator, Callable
from dataclasses import replace
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import asyncpg
import dkim
import pytest
from pydantic import SecretStr

from retarget.common.schemas import DeliveryRecorded
from retarget.common.workspaces import Workspace, WorkspaceStore
from retarget.config.dkim import dns_record, new_key_body
from retarget.config.records import ConfigChange
from retarget.config.seal import SealSettings, new_seal_key
from retarget.config.testing import publish_changes
from retarget.sender.bootstrap import Sender, bootstrap
from retarget.sender.settings import SenderSettings
from retarget.sender.testing import dns_answers

from .conftest import outbound_message, produce

pytestmark = pytest.mark.integration

SEAL_TEXT = new_seal_key()
SEAL = base64.b64decode(SEAL_TEXT)
DOMAIN = "shop.example"  # the From domain of conftest.outbound_message


@pytest.fixture
async def start(sender_settings: SenderSettings, stack: dict[str, str]) -> AsyncIterator[Callable[..., Any]]:
    """Starts a sender on the stack's SMTP capture, with or without the seal key; stops it afterwards."""
    running: list[tuple[Sender, asyncio.Event, asyncio.Task[None]]] = []

    async def _start(seal: str | None = SEAL_TEXT, **changes: Any) -> Sender:
        settings = SenderSettings.model_validate(
            {**sender_settings.model_dump(), "smtp_url": stack["RETARGET_SMTP_URL"], **changes}
        )
        sealing = SealSettings(config_seal_key_file=None, config_seal_key=SecretStr(seal) if seal else None)
        sender = bootstrap(settings, seal=sealing)
        await sender.start()
        stop = asyncio.Event()
        running.append((sender, stop, asyncio.create_task(sender.run(stop))))
        return sender

    yield _start
    for sender, stop, task in running:
        stop.set()
        await asyncio.wait_for(task, 30)
        await sender.close()


def key_change(workspace_id: str, selector: str, body: dict[str, Any], version: int) -> ConfigChange:
    return ConfigChange(workspace_id, "dkim", selector, version, False, body, "test", datetime.now(UTC))


async def publish(sender: Sender, settings: SenderSettings, *changes: ConfigChange) -> list[int]:
    """Publish feed records and wait (by deadline) until the running sender has applied them; their offsets."""
    offsets = await publish_changes(settings.kafka_bootstrap, sender.topics.config, changes)

    def applied(change: ConfigChange) -> bool:
        seen = sender.config.current(change.workspace_id, change.kind, change.name)
        return seen is not None and seen.version >= change.version

    deadline = asyncio.get_running_loop().time() + 60
    while not all(map(applied, changes)):
        assert asyncio.get_running_loop().time() < deadline, "the sender never applied the feed records"
        await asyncio.sleep(0.1)
    return offsets


async def send_and_capture(
    sender: Sender, settings: SenderSettings, reader: Any, capture_dir: Path, workspace_id: str
) -> tuple[DeliveryRecorded, bytes | None]:
    """One message through the running sender: its outcome, and the bytes the SMTP capture got."""
    message = outbound_message(workspace_id)
    await produce(settings, message)

    def decided(_: list[bytes]) -> bool:
        return any(d.message_id == message.message_id for d in reader.deliveries())

    await reader.until(decided, 60)
    [outcome] = [d for d in reader.deliveries() if d.message_id == message.message_id][:1]
    if outcome.outcome != "sent":
        return outcome, None
    deadline = asyncio.get_running_loop().time() + 30
    while (raw := await asyncio.to_thread(captured, capture_dir, f"<{message.message_id}@")) is None:
        assert asyncio.get_running_loop().time() < deadline, "sent, but not in the SMTP capture"
        await asyncio.sleep(0.2)
    return outcome, raw


def captured(capture_dir: Path, marker: str) -> bytes | None:
    """The bytes of the captured message containing `marker`, if it is there yet."""
    for path in capture_dir.glob("*.eml"):
        raw = path.read_bytes()
        if marker.encode() in raw:
            return raw
    return None


def signing_selectors(raw: bytes, *bodies: tuple[str, dict[str, Any]]) -> list[str]:
    """The selectors of the message's DKIM signatures, each verified by dkimpy first."""
    lookup = dns_answers([dns_record(s, b["domain"], b["algorithm"], b["public_key"]) for s, b in bodies])
    signatures = email.message_from_bytes(raw).get_all("DKIM-Signature") or []
    for index in range(len(signatures)):
        assert dkim.DKIM(raw).verify(idx=index, dnsfunc=lookup), f"signature {index} does not verify"
    return sorted(re.search(r"\bs=([^;\s]+)", re.sub(r"\s+", "", s)).group(1) for s in signatures)  # type: ignore[union-attr]


def selector() -> str:
    return f"s{uuid.uuid4().hex[:8]}"


async def test_a_key_on_the_feed_signs_the_next_message_without_a_restart(
    start: Any, sender_settings: SenderSettings, workspace_id: str, read_topic: Any, capture_dir: Path
) -> None:
    instance = f"test-{workspace_id}"
    sender = await start(sender_instance_id=instance)
    reader = await read_topic(sender.topics.deliveries)
    before, raw = await send_and_capture(sender, sender_settings, reader, capture_dir, workspace_id)
    assert before.outcome == "sent" and raw is not None and b"DKIM-Signature" not in raw
    s1 = selector()
    body = new_key_body(workspace_id, s1, DOMAIN, "ed25519", SEAL)
    [offset] = await publish(sender, sender_settings, key_change(workspace_id, s1, body, 1))
    after, raw = await send_and_capture(sender, sender_settings, reader, capture_dir, workspace_id)
    assert after.outcome == "sent" and raw is not None
    assert signing_selectors(raw, (s1, body)) == [s1]
    assert f"d={DOMAIN};".encode() in raw
    await reported_applied(sender_settings, instance, offset)


async def reported_applied(settings: SenderSettings, instance: str, offset: int) -> None:
    """The sender reports in config_applied (every few seconds) that it applied the feed up to `offset`."""
    conn = await asyncpg.connect(settings.database_url)
    try:
        deadline = asyncio.get_running_loop().time() + 60
        query = "SELECT feed_offset FROM config_applied WHERE service = 'sender' AND instance = $1"
        while (reported := await conn.fetchval(query, instance)) is None or reported < offset:
            assert asyncio.get_running_loop().time() < deadline, (
                "the sender never reported the offset it applied"
            )
            await asyncio.sleep(0.5)
        await conn.execute("DELETE FROM config_applied WHERE instance = $1", instance)
    finally:
        await conn.close()


async def test_during_a_rotation_both_selectors_sign_and_after_retire_at_only_the_new_one(
    start: Any, sender_settings: SenderSettings, workspace_id: str, read_topic: Any, capture_dir: Path
) -> None:
    sender = await start()
    reader = await read_topic(sender.topics.deliveries)
    old, new = selector(), selector()
    old_body = new_key_body(workspace_id, old, DOMAIN, "rsa", SEAL)
    new_body = new_key_body(workspace_id, new, DOMAIN, "ed25519", SEAL)
    retiring = {
        **old_body,
        "state": "retiring",
        "retire_at": (datetime.now(UTC) + timedelta(days=7)).isoformat(),
    }
    await publish(
        sender,
        sender_settings,
        key_change(workspace_id, old, old_body, 1),
        key_change(workspace_id, new, new_body, 2),
        key_change(workspace_id, old, retiring, 3),
    )
    _, raw = await send_and_capture(sender, sender_settings, reader, capture_dir, workspace_id)
    assert raw is not None and signing_selectors(raw, (old, old_body), (new, new_body)) == sorted([old, new])
    # its retire_at passed: the same key, retire_at in the past (a clock would otherwise have to wait 7 days)
    retired = {**retiring, "retire_at": (datetime.now(UTC) - timedelta(seconds=1)).isoformat()}
    await publish(sender, sender_settings, key_change(workspace_id, old, retired, 4))
    _, raw = await send_and_capture(sender, sender_settings, reader, capture_dir, workspace_id)
    assert raw is not None and signing_selectors(raw, (new, new_body)) == [new]


async def test_a_sealed_key_is_useless_without_the_seal_key_and_the_mail_waits_unsent(
    start: Any, sender_settings: SenderSettings, workspace_id: str, read_topic: Any, capture_dir: Path
) -> None:
    sender = await start(seal=None)
    reader = await read_topic(sender.topics.deliveries)
    s1 = selector()
    body = new_key_body(workspace_id, s1, DOMAIN, "ed25519", SEAL)
    assert "PRIVATE KEY" not in str(body)  # what the feed (and the store) hold is ciphertext only
    await publish(sender, sender_settings, key_change(workspace_id, s1, body, 1))
    outcome, raw = await send_and_capture(sender, sender_settings, reader, capture_dir, workspace_id)
    assert (outcome.outcome, outcome.reason, raw) == ("deferred", "dkim_key_missing", None)
    other = outbound_message(f"{workspace_id}-nokeys")  # a workspace without keys is not held up
    await produce(sender_settings, other)
    await reader.until(lambda _: any(d.message_id == other.message_id for d in reader.deliveries()), 60)
    assert [d.outcome for d in reader.deliveries() if d.message_id == other.message_id] == ["sent"]
    conn = await asyncpg.connect(sender_settings.database_url)
    try:
        await conn.execute("DELETE FROM send_log WHERE workspace_id = $1", other.workspace_id)
    finally:
        await conn.close()


async def test_a_policy_record_on_the_feed_applies_to_the_next_message_despite_the_cache(
    start: Any, sender_settings: SenderSettings, workspace_id: str, read_topic: Any, capture_dir: Path
) -> None:
    conn = await asyncpg.connect(sender_settings.database_url)
    try:
        store = WorkspaceStore(conn)
        shop = Workspace(workspace_id, "Shop", "Shop", "shop@shop.example", "1 Main St")
        await store.upsert(shop)
        sender = await start(policy_cache_s=3600)  # the TTL alone would keep the old policy for an hour
        reader = await read_topic(sender.topics.deliveries)
        before, _ = await send_and_capture(sender, sender_settings, reader, capture_dir, workspace_id)
        assert before.outcome == "sent"  # opt_out: consent unknown is enough
        await store.upsert(
            replace(shop, consent_mode="opt_in")
        )  # what the config service writes, then publishes
    finally:
        await conn.close()
    policy = ConfigChange(
        workspace_id, "policy", "", 1, False, {"consent_mode": "opt_in"}, "test", datetime.now(UTC)
    )
    await publish(sender, sender_settings, policy)
    after, raw = await send_and_capture(sender, sender_settings, reader, capture_dir, workspace_id)
    assert (after.outcome, after.reason, raw) == ("suppressed", "no_consent", None)


def cli(env: dict[str, str], *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(
        [sys.executable, "-m", "retarget.cli.main", *args],
        env=env,
        capture_output=True,
        text=True,
        timeout=120,
    )


async def test_keys_generated_by_the_cli_sign_the_next_message_and_are_stored_sealed(
    start: Any,
    sender_settings: SenderSettings,
    workspace_id: str,
    read_topic: Any,
    capture_dir: Path,
    tmp_path: Path,
) -> None:
    conn = await asyncpg.connect(sender_settings.database_url)
    try:
        await WorkspaceStore(conn).upsert(
            Workspace(workspace_id, "Shop", "Shop", "shop@shop.example", "1 Main St")
        )
        sender = await start()
        reader = await read_topic(sender.topics.deliveries)
        seal_file = tmp_path / "seal"
        seal_file.write_text(SEAL_TEXT)
        env = {
            **os.environ,
            "RETARGET_TOPIC_PREFIX": sender_settings.topic_prefix,
            "RETARGET_KAFKA_BOOTSTRAP": sender_settings.kafka_bootstrap,
            "RETARGET_DATABASE_URL": sender_settings.database_url,
            "RETARGET_CONFIG_SEAL_KEY_FILE": str(seal_file),
        }
        done = await asyncio.to_thread(cli, env, "dkim", "generate", "--workspace", workspace_id)
        assert done.returncode == 0, done.stderr
        records = done.stdout.splitlines()
        assert [r.split("._domainkey.")[1].split(" TXT ")[0] for r in records] == [DOMAIN, DOMAIN]
        selectors = sorted(r.split("._domainkey.")[0] for r in records)
        assert [s.rsplit("-", 1)[1] for s in selectors] == ["ed", "rsa"]
        await wait_applied(sender, workspace_id, selectors)
        _, raw = await send_and_capture(sender, sender_settings, reader, capture_dir, workspace_id)
        assert raw is not None
        lookup = dns_answers(records)  # exactly what the CLI told the operator to publish
        assert all(dkim.DKIM(raw).verify(idx=i, dnsfunc=lookup) for i in range(2))
        assert sorted(re.findall(rb";\s+s=([^;]+);", raw)) == [s.encode() for s in selectors]
        stored = await conn.fetch(
            "SELECT body::text AS body FROM config_versions WHERE workspace_id = $1", workspace_id
        )
        assert len(stored) == 2 and all(
            "aesgcm1:" in r["body"] and "PRIVATE KEY" not in r["body"] for r in stored
        )
        listed = await asyncio.to_thread(cli, env, "dkim", "list", "--workspace", workspace_id, "--json")
        assert listed.returncode == 0 and "aesgcm1" not in listed.stdout and "PRIVATE" not in listed.stdout
        assert sorted(json.loads(line)["selector"] for line in listed.stdout.splitlines()) == selectors
    finally:
        await conn.execute("DELETE FROM config_versions WHERE workspace_id = $1", workspace_id)
        await conn.close()


async def wait_applied(sender: Sender, workspace_id: str, selectors: list[str]) -> None:
    deadline = asyncio.get_running_loop().time() + 60
    while any(sender.config.current(workspace_id, "dkim", s) is None for s in selectors):
        assert asyncio.get_running_loop().time() < deadline, "the sender never applied the generated keys"
        await asyncio.sleep(0.1)


async def test_the_cli_without_the_seal_key_says_what_to_set_and_stores_nothing(
    sender_settings: SenderSettings, workspace_id: str
) -> None:
    env = {**os.environ, "RETARGET_CONFIG_SEAL_KEY_FILE": "", "RETARGET_CONFIG_SEAL_KEY": ""}
    done = await asyncio.to_thread(cli, env, "dkim", "generate", "--workspace", workspace_id)
    assert done.returncode == 2 and "RETARGET_CONFIG_SEAL_KEY_FILE" in done.stderr and done.stdout == ""


async def test_keys_published_before_the_sender_starts_sign_its_first_message(
    start: Any, sender_settings: SenderSettings, workspace_id: str, read_topic: Any, capture_dir: Path
) -> None:
    s1 = selector()
    body = new_key_body(workspace_id, s1, DOMAIN, "rsa", SEAL)
    topic = f"{sender_settings.topic_prefix}.config.v1"
    await publish_changes(sender_settings.kafka_bootstrap, topic, [key_change(workspace_id, s1, body, 1)])
    sender = await start()  # reads the feed to its end before it consumes the first message
    reader = await read_topic(sender.topics.deliveries)
    first, raw = await send_and_capture(sender, sender_settings, reader, capture_dir, workspace_id)
    assert first.outcome == "sent" and raw is not None and signing_selectors(raw, (s1, body)) == [s1]
