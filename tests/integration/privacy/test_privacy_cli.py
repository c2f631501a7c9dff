"""`retarget privacy erase|export` against the real Kafka and PostgreSQL (no segmenter running)."""

from __future__ import annotations

import json
import socket
import uuid

import asyncpg
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer

from retarget.cli.main import build_parser
from retarget.common.identity import email_digest
from retarget.common.privacy import erasure_key, privacy_topic
from retarget.common.schemas import ErasureRequested

pytestmark = pytest.mark.integration


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])  # nothing listens once the socket is closed


async def run_cli(*argv: str) -> int:
    args = build_parser().parse_args(list(argv))
    return int(await args.func(args))


async def test_cli_erase_publishes_to_the_privacy_topic_then_records_the_erasure(
    stack, topic_prefix, workspace_id, monkeypatch, capsys
):
    monkeypatch.setenv("RETARGET_TOPIC_PREFIX", topic_prefix)
    monkeypatch.setenv("RETARGET_TOPIC_PARTITIONS", "2")
    monkeypatch.setenv("RETARGET_SEGMENTER_URL", f"http://127.0.0.1:{closed_port()}")
    address = f"cli-{uuid.uuid4().hex[:8]}@example.com"

    assert await run_cli("privacy", "erase", "--workspace", workspace_id, "--email", address) == 0
    report = json.loads(capsys.readouterr().out)
    assert report["suppressed"] == 1 and report["segmenter"]["requests_published"] == 1
    assert "did not answer" in report["segmenter"]["note"]  # the segmenter is not running here

    consumer = AIOKafkaConsumer(
        privacy_topic(topic_prefix),
        bootstrap_servers=stack["RETARGET_KAFKA_BOOTSTRAP"],
        auto_offset_reset="earliest",
        enable_auto_commit=False,
    )
    await consumer.start()
    try:
        record = await consumer.getone()
    finally:
        await consumer.stop()
    digest = email_digest(address)
    request = msgspec.json.decode(record.value, type=ErasureRequested)
    assert record.key == erasure_key(workspace_id, digest.hex())
    assert (request.workspace_id, request.email_hash, request.profile_id) == (
        workspace_id,
        digest.hex(),
        None,
    )
    assert address.encode() not in record.value  # only the hash travels

    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    try:
        reason = await conn.fetchval(
            "SELECT reason FROM suppressions WHERE workspace_id = $1 AND email_hash = $2",
            workspace_id,
            digest,
        )
        erasures = await conn.fetchval("SELECT count(*) FROM erasures WHERE workspace_id = $1", workspace_id)
    finally:
        await conn.close()
    assert (reason, erasures) == ("erased", 1)

    assert await run_cli("privacy", "export", "--workspace", workspace_id, "--email", address) == 0
    exported = json.loads(capsys.readouterr().out)
    assert exported["profiles"] == [] and exported["notes"][0].startswith("segmenter profiles not included")
    assert [s["reason"] for s in exported["suppressions"]] == ["erased"]


async def test_cli_erase_changes_nothing_when_kafka_is_unreachable(
    stack, topic_prefix, workspace_id, monkeypatch, capsys
):
    monkeypatch.setenv("RETARGET_KAFKA_BOOTSTRAP", f"127.0.0.1:{closed_port()}")
    monkeypatch.setenv("RETARGET_SEGMENTER_URL", f"http://127.0.0.1:{closed_port()}")
    monkeypatch.setenv("RETARGET_TOPIC_PREFIX", topic_prefix)
    code = await run_cli("privacy", "erase", "--workspace", workspace_id, "--user-id", "u-1")
    assert code == 1 and "nothing was erased" in capsys.readouterr().out
    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    try:
        assert await conn.fetchval("SELECT count(*) FROM erasures WHERE workspace_id = $1", workspace_id) == 0
    finally:
        await conn.close()
