"""The local stack (`retarget devstack`): data survives down/up, mail is captured byte for byte.

Runs against the stack in the repo's .devstack (a temporary RETARGET_DEVSTACK_DIR would
start a second broker on the same ports). `up` is idempotent, so the fixture simply runs
it; if the stack cannot start, the tests fail with its output instead of skipping.
Note: the down/up test also stops services recorded in .devstack/state.json.
"""

from __future__ import annotations

import asyncio
import base64
import io
import json
import random
import re
import smtplib
import socket
import subprocess
import sys
import time
import uuid
from email.message import EmailMessage
from email.policy import SMTP
from pathlib import Path
from typing import Any

import asyncpg
import dkim
import pytest
from aiokafka import AIOKafkaConsumer, AIOKafkaProducer, TopicPartition
from aiokafka.admin import AIOKafkaAdminClient, NewTopic
from cryptography.hazmat.primitives import serialization
from cryptography.hazmat.primitives.asymmetric import rsa
from rich.console import Console

from retarget.devstack import DevstackError, load_state, stack_env
from retarget.devstack.services import list_services, start_service, stop_service

pytestmark = pytest.mark.integration


def devstack(*args: str, timeout: float = 240) -> subprocess.CompletedProcess[str]:
    argv = [sys.executable, "-m", "retarget.cli.main", "devstack", *args]
    result = subprocess.run(argv, capture_output=True, text=True, timeout=timeout)
    assert result.returncode == 0, (
        f"`retarget devstack {' '.join(args)}` failed (exit {result.returncode})\n"
        f"stdout:\n{result.stdout}\nstderr:\n{result.stderr}"
    )
    return result


@pytest.fixture(scope="module")
def local_stack() -> dict[str, Any]:
    devstack("up")
    status = json.loads(devstack("status", "--json").stdout)
    for name in ("kafka", "postgres", "smtp"):
        assert status[name]["running"], f"{name} is not running after `retarget devstack up`: {status[name]}"
    return status


async def _read_one(bootstrap: str, topic: str, timeout: float = 20.0) -> bytes | None:
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, auto_offset_reset="earliest"
    )
    await consumer.start()
    try:
        partition = TopicPartition(topic, 0)
        consumer.assign([partition])
        await consumer.seek_to_beginning(partition)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            for records in (await consumer.getmany(timeout_ms=1000)).values():
                if records:
                    return records[0].value
        return None
    finally:
        await consumer.stop()


@pytest.mark.exclusive  # `down` stops the broker and the database every other test is using
async def test_topic_and_table_survive_down_and_up(local_stack: dict[str, Any]) -> None:
    env = stack_env()
    bootstrap, dsn = env["RETARGET_KAFKA_BOOTSTRAP"], env["RETARGET_DATABASE_URL"]
    suffix = uuid.uuid4().hex[:12]
    topic, table, payload = f"devstack-test-{suffix}", f"devstack_test_{suffix}", f"survives-{suffix}"

    admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
    await admin.start()
    try:
        await admin.create_topics([NewTopic(topic, num_partitions=1, replication_factor=1)])
    finally:
        await admin.close()
    producer = AIOKafkaProducer(bootstrap_servers=bootstrap, acks="all")
    await producer.start()
    try:
        await producer.send_and_wait(topic, payload.encode(), key=b"k")
    finally:
        await producer.stop()
    conn = await asyncpg.connect(dsn)
    try:
        await conn.execute(f"CREATE TABLE {table} (id int PRIMARY KEY, note text NOT NULL)")
        await conn.execute(f"INSERT INTO {table} VALUES (1, $1)", payload)
    finally:
        await conn.close()

    await asyncio.to_thread(devstack, "down")
    stopped = json.loads(devstack("status", "--json").stdout)
    for name in ("kafka", "postgres", "smtp"):
        if stopped[name]["managed"]:
            assert not stopped[name]["running"], f"{name} still runs after `down`"
    await asyncio.to_thread(devstack, "up")

    try:
        assert await _read_one(bootstrap, topic) == payload.encode()
        conn = await asyncpg.connect(dsn)
        try:
            assert await conn.fetchval(f"SELECT note FROM {table} WHERE id = 1") == payload
        finally:
            await conn.close()
    finally:
        conn = await asyncpg.connect(dsn)
        try:
            await conn.execute(f"DROP TABLE IF EXISTS {table}")
        finally:
            await conn.close()
        admin = AIOKafkaAdminClient(bootstrap_servers=bootstrap)
        await admin.start()
        try:
            await admin.delete_topics([topic])
        finally:
            await admin.close()


def _dkim_signed(marker: str) -> tuple[bytes, bytes]:
    """A DKIM-signed message (CRLF line ends, a line starting with a dot) and its DNS TXT record."""
    key = rsa.generate_private_key(public_exponent=65537, key_size=2048)
    private = key.private_bytes(
        serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8, serialization.NoEncryption()
    )
    public = key.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    msg = EmailMessage()
    msg["From"] = "shop@example.test"
    msg["To"] = "a@example.test, b@example.test"
    msg["Subject"] = f"devstack capture {marker}"
    msg["Message-ID"] = f"<{marker}@example.test>"
    msg.set_content(f"Hello {marker}\n.a line that SMTP dot-stuffs\nbye\n")
    raw = msg.as_bytes(policy=SMTP)
    signature = dkim.sign(raw, b"sel", b"example.test", private, include_headers=[b"from", b"to", b"subject"])
    return signature + raw, b"v=DKIM1; k=rsa; p=" + base64.b64encode(public)


def test_smtp_capture_keeps_exact_bytes_and_envelope(local_stack: dict[str, Any]) -> None:
    smtp = local_stack["smtp"]
    if not smtp["managed"]:
        pytest.skip("RETARGET_SMTP_URL points at an external server: there is no local capture to inspect")
    capture = Path(smtp["capture_dir"])
    marker = uuid.uuid4().hex
    message, txt = _dkim_signed(marker)
    rcpts = ["a@example.test", "b@example.test"]
    with smtplib.SMTP(smtp["host"], smtp["port"], timeout=10) as client:
        client.sendmail("bounce@example.test", rcpts, message)

    deadline = time.monotonic() + 10
    found: list[Path] = []
    while not found and time.monotonic() < deadline:
        found = [p for p in capture.glob("*.eml") if marker.encode() in p.read_bytes()]
        time.sleep(0.05)
    assert len(found) == 1, f"expected one captured .eml with {marker} in {capture}, found {found}"
    eml = found[0]
    try:
        assert re.fullmatch(r"\d{8}T\d{6}\.\d{6}Z-[0-9a-f]{32}\.eml", eml.name), eml.name
        captured = eml.read_bytes()
        assert captured == message
        assert dkim.verify(captured, dnsfunc=lambda name, timeout=5: txt)
        envelope = json.loads(eml.with_suffix(".json").read_text())
        assert envelope["mail_from"] == "bounce@example.test"
        assert envelope["rcpt_tos"] == rcpts
        assert envelope["eml"] == eml.name
    finally:
        eml.unlink(missing_ok=True)
        eml.with_suffix(".json").unlink(missing_ok=True)


def test_smtp_capture_refuses_bounce_addresses_with_a_hard_bounce(local_stack: dict[str, Any]) -> None:
    smtp = local_stack["smtp"]
    if not smtp["managed"]:
        pytest.skip("RETARGET_SMTP_URL points at an external server: there is no local capture to inspect")
    with smtplib.SMTP(smtp["host"], smtp["port"], timeout=10) as client:
        with pytest.raises(smtplib.SMTPRecipientsRefused) as refused:
            client.sendmail("shop@example.test", ["bounce-7@example.test"], b"Subject: x\r\n\r\nx\r\n")
        # the other recipient of a mixed message is still accepted
        client.sendmail(
            "shop@example.test", ["bounce-8@example.test", "fine@example.test"], b"Subject: y\r\n\r\ny\r\n"
        )
    code, _ = refused.value.recipients["bounce-7@example.test"]
    assert code == 550


def _free_port() -> int:
    with socket.socket() as sock:
        sock.bind(("127.0.0.1", 0))
        return sock.getsockname()[1]


def test_services_start_record_and_stop(local_stack: dict[str, Any], tmp_path: Path) -> None:
    (tmp_path / "healthz").write_text("ok")
    name, port = f"devstack-test-{uuid.uuid4().hex[:8]}", _free_port()
    argv = [
        sys.executable,
        "-m",
        "http.server",
        str(port),
        "--bind",
        "127.0.0.1",
        "--directory",
        str(tmp_path),
    ]
    record = start_service(name, argv, http_port=port, timeout=20)
    try:
        assert record["http"] == f"http://127.0.0.1:{port}"
        assert load_state()["services"][name]["pid"] == record["pid"]
        assert list_services()[name]["running"]
        assert start_service(name, argv, http_port=port)["pid"] == record["pid"]  # idempotent
    finally:
        stop_service(name)
    assert name not in load_state()["services"]

    broken = f"devstack-test-{uuid.uuid4().hex[:8]}"
    with pytest.raises(DevstackError, match="boom"):
        start_service(broken, [sys.executable, "-c", "print('boom')"], http_port=_free_port(), timeout=10)
    assert broken not in load_state()["services"]


def _free_port_run(count: int) -> int:
    """The first of `count` consecutive free ports (a second stack's Kafka beside the shared one)."""
    rng = random.Random()
    for _ in range(200):
        base = rng.randrange(30_000, 60_000, 2)
        sockets = []
        try:
            for port in range(base, base + count):
                sock = socket.socket()
                sock.bind(("127.0.0.1", port))
                sockets.append(sock)
            return base
        except OSError:
            continue
        finally:
            for sock in sockets:
                sock.close()
    raise RuntimeError(f"no {count} consecutive free ports")


async def test_up_with_three_brokers_runs_a_replicated_cluster_that_status_lists_and_stop_ends(
    stack: dict[str, str], tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """`up --brokers 3` in a stack of its own (tmp dir, Kafka on moved ports), in-process; its
    PostgreSQL and SMTP are the shared stack's, named so that `up` counts them as external."""
    from retarget.common.kafka import delete_topics_with_prefixes, ensure_topics
    from retarget.common.settings import CommonSettings
    from retarget.devstack import kafka, prometheus
    from retarget.devstack import stack as devstack_stack
    from retarget.devstack.paths import Layout
    from retarget.devstack.report import render

    monkeypatch.setenv("RETARGET_DEVSTACK_DIR", str(tmp_path / "devstack"))
    monkeypatch.setenv("RETARGET_DEVSTACK_KAFKA_PORT", str(_free_port_run(6)))
    for name in ("RETARGET_KAFKA_BOOTSTRAP", "RETARGET_TOPIC_REPLICATION", "RETARGET_TOPIC_MIN_INSYNC"):
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setenv(
        "RETARGET_DATABASE_URL", stack["RETARGET_DATABASE_URL"].replace("127.0.0.1", "localhost")
    )
    monkeypatch.setenv("RETARGET_SMTP_URL", stack["RETARGET_SMTP_URL"].replace("127.0.0.1", "localhost"))

    async def no_prometheus(layout: Layout) -> tuple[None, bool]:
        return None, False  # the shared stack's holds its port

    monkeypatch.setattr(prometheus, "start", no_prometheus)
    layout = Layout.current()
    try:
        status = await devstack_stack.up(brokers=3)
        # `up` returns once all three answer metadata; on a loaded machine a node's listener can
        # still miss status()'s short probe for a moment, so give the probe a deadline.
        deadline = time.monotonic() + 30
        while not all(node["running"] for node in status["kafka"]["nodes"]) and time.monotonic() < deadline:
            await asyncio.sleep(0.5)
            status = devstack_stack.status()
        nodes = status["kafka"]["nodes"]
        assert status["kafka"]["brokers"] == 3 and status["kafka"]["running"]
        assert [node["node_id"] for node in nodes] == [1, 2, 3] and all(node["running"] for node in nodes), (
            nodes
        )
        assert len({node["address"] for node in nodes}) == 3
        out = io.StringIO()
        render(status, Console(file=out, width=100))
        assert "node 3" in out.getvalue()

        env = stack_env()  # what services started by the stack get
        assert env["RETARGET_KAFKA_BOOTSTRAP"] == ",".join(node["address"] for node in nodes)
        settings = CommonSettings.model_validate(
            {
                "kafka_bootstrap": env["RETARGET_KAFKA_BOOTSTRAP"],
                "topic_replication": env["RETARGET_TOPIC_REPLICATION"],
                "topic_min_insync": env["RETARGET_TOPIC_MIN_INSYNC"],
                "topic_partitions": 1,
            }
        )
        topic = f"devstack-brokers-{uuid.uuid4().hex[:8]}"
        await ensure_topics(settings, [topic])
        admin = AIOKafkaAdminClient(bootstrap_servers=settings.kafka_bootstrap)
        await admin.start()
        try:
            [described] = await admin.describe_topics([topic])
            assert len(described["partitions"][0]["replicas"]) == 3
        finally:
            await admin.close()
        await delete_topics_with_prefixes(settings.kafka_bootstrap, [topic])
    finally:
        stopped = kafka.stop(layout)
    assert stopped.count("stopped") == 3, stopped
    after = devstack_stack.status()["kafka"]
    assert after["pid"] is None and not after["running"], after
