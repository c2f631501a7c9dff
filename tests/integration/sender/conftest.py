"""Fixtures for the sender's integration tests: real Kafka and PostgreSQL (the shared stack,
through the lead's `stack` fixture), and a real SMTP server of our own — an aiosmtpd
Controller on a free port whose answers depend on the recipient's local part:

    hard-…   550 at RCPT (a hard bounce)         soft-…   451 at RCPT, every time
    flaky-…  451 at RCPT the first time, then accepted   anything else: 250
"""

from __future__ import annotations

import asyncio
import socket
import uuid
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime
from email import message_from_bytes
from typing import Any

import asyncpg
import pytest
from aiokafka import AIOKafkaConsumer
from aiosmtpd.controller import Controller

from retarget.common.kafka import make_consumer, make_producer
from retarget.common.schemas import DeliveryRecorded, OutboundMessage, decoder, encode
from retarget.common.topics import Topics, recipient_key
from retarget.sender.bootstrap import Sender, bootstrap
from retarget.sender.local_mta import PrivatePostfix, SmtpSink
from retarget.sender.settings import SenderSettings


@dataclass
class ScriptedSmtp:
    """aiosmtpd handler: records accepted messages, answers by recipient local part."""

    received: list[tuple[str, str]] = field(default_factory=list)  # (recipient, Message-ID)
    ehlos: int = 0
    seen: set[str] = field(default_factory=set)

    async def handle_EHLO(
        self, server: Any, session: Any, envelope: Any, hostname: str, responses: list[str]
    ):  # type: ignore[no-untyped-def]
        self.ehlos += 1
        session.host_name = hostname
        return responses

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        local = address.partition("@")[0]
        if local.startswith("hard-"):
            return f"550 5.1.1 <{address}>: Recipient address rejected: User unknown"
        if local.startswith("soft-") or (local.startswith("flaky-") and address not in self.seen):
            self.seen.add(address)
            return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message_id = message_from_bytes(envelope.content)["Message-ID"]
        for rcpt in envelope.rcpt_tos:
            self.received.append((rcpt, message_id))
        return "250 2.0.0 Ok: queued"

    def count(self, message_id: str) -> int:
        return sum(1 for _, mid in self.received if mid == message_id)


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


@pytest.fixture(scope="session")
def smtp_server() -> Iterator[tuple[ScriptedSmtp, int]]:
    handler, port = ScriptedSmtp(), _free_port()
    controller = Controller(handler, hostname="127.0.0.1", port=port)
    controller.start()
    yield handler, port
    controller.stop()


@pytest.fixture
def smtp(smtp_server: tuple[ScriptedSmtp, int]) -> ScriptedSmtp:
    return smtp_server[0]


@pytest.fixture(autouse=True)
async def _forget_the_workspace(stack: dict[str, str], workspace_id: str) -> AsyncIterator[None]:
    """Delete the test's send-log rows (with their retries), suppressions and policies afterwards.

    A deferred message left behind would wait in the shared database's retry queue for good:
    only a sender of the test's topic prefix takes it (migration 018), or a sender older than that.
    """
    yield
    conn = await asyncpg.connect(stack["RETARGET_DATABASE_URL"])
    try:
        await conn.execute("DELETE FROM send_log WHERE workspace_id = $1", workspace_id)
        await conn.execute("DELETE FROM suppressions WHERE workspace_id = $1", workspace_id)
        await conn.execute("DELETE FROM sending_policies WHERE workspace_id = $1", workspace_id)
        await conn.execute("DELETE FROM frequency_caps WHERE workspace_id = $1", workspace_id)
        await conn.execute("DELETE FROM workspaces WHERE id = $1", workspace_id)
    finally:
        await conn.close()


@pytest.fixture
def sender_settings(
    stack: dict[str, str], topic_prefix: str, smtp_server: tuple[ScriptedSmtp, int]
) -> SenderSettings:
    return SenderSettings.model_validate(
        {
            "kafka_bootstrap": stack["RETARGET_KAFKA_BOOTSTRAP"],
            "database_url": stack["RETARGET_DATABASE_URL"],
            "topic_prefix": topic_prefix,
            "topic_partitions": 3,
            "smtp_url": f"smtp://127.0.0.1:{smtp_server[1]}",
            "smtp_connections": 4,
            "sender_group": f"sender-{topic_prefix}",
            "retry_initial_s": 0.5,
            "retry_poll_s": 0.2,
        }
    )


@pytest.fixture
async def running_sender(sender_settings: SenderSettings) -> AsyncIterator[Sender]:
    sender = bootstrap(sender_settings)
    await sender.start()
    stop = asyncio.Event()
    task = asyncio.create_task(sender.run(stop))
    yield sender
    stop.set()
    await asyncio.wait_for(task, 30)
    await sender.close()


@pytest.fixture
async def start_sender(sender_settings: SenderSettings) -> AsyncIterator[Any]:
    """Starts a sender with some settings changed (say, another SMTP relay); stops it afterwards."""
    running: list[tuple[Sender, asyncio.Event, asyncio.Task[None]]] = []

    async def _start(**changes: Any) -> Sender:
        sender = bootstrap(SenderSettings.model_validate({**sender_settings.model_dump(), **changes}))
        await sender.start()
        stop = asyncio.Event()
        running.append((sender, stop, asyncio.create_task(sender.run(stop))))
        return sender

    yield _start
    for sender, stop, task in running:
        stop.set()
        await asyncio.wait_for(task, 30)
        await sender.close()


@pytest.fixture
def smtp_sink() -> Iterator[Any]:
    """Starts Postfix's smtp-sink on a free port with fault flags; returns its port."""
    sinks: list[SmtpSink] = []

    def _start(*flags: str) -> int:
        try:
            sinks.append(SmtpSink(*flags))
        except FileNotFoundError as exc:
            pytest.skip(str(exc))
        return sinks[-1].port

    yield _start
    for sink in sinks:
        sink.stop()


@pytest.fixture(scope="session")
def postfix() -> Iterator[PrivatePostfix]:
    """A real Postfix receiving on a loopback port, storing example.com mail in a maildir."""
    try:
        instance = PrivatePostfix()
    except (FileNotFoundError, PermissionError) as exc:
        pytest.skip(str(exc))
    instance.start()
    yield instance
    instance.stop()


def outbound_message(workspace_id: str, recipient: str | None = None, **fields: Any) -> OutboundMessage:
    recipient = recipient or f"r-{uuid.uuid4().hex[:10]}@example.com"
    message_id = fields.pop("message_id", f"m-{uuid.uuid4().hex}")
    raw = (
        f"From: Shop <shop@shop.example>\r\nTo: {recipient}\r\nSubject: You left something\r\n"
        f"Message-ID: <{message_id}@shop.example>\r\n\r\nCome back!\r\n"
    )
    values: dict[str, Any] = {
        "message_id": message_id,
        "trigger_id": uuid.uuid4().hex,
        "workspace_id": workspace_id,
        "profile_id": f"p-{uuid.uuid4().hex[:8]}",
        "campaign": "abandoned-cart",
        "recipient": recipient,
        "mail_from": "bounces@shop.example",
        "raw": raw,
        "created_at": datetime.now(UTC),
    }
    values.update(fields)
    return OutboundMessage(**values)


async def produce(settings: SenderSettings, *values: OutboundMessage | bytes) -> None:
    producer = make_producer(settings)
    await producer.start()
    try:
        topic = Topics(settings.topic_prefix).outbound
        for value in values:
            if isinstance(value, bytes):
                await producer.send_and_wait(topic, value, key=b"garbage")
            else:
                await producer.send_and_wait(topic, encode(value), key=recipient_key(value.recipient))
    finally:
        await producer.stop()


class TopicReader:
    """Reads a topic from the beginning; `until` waits for records matching a predicate."""

    def __init__(self, consumer: AIOKafkaConsumer) -> None:
        self.consumer = consumer
        self.values: list[bytes] = []

    async def until(self, enough: Any, timeout_s: float = 30.0) -> list[bytes]:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + timeout_s
        while not enough(self.values):
            if loop.time() > deadline:
                raise TimeoutError(f"only {len(self.values)} records after {timeout_s}s")
            batches = await self.consumer.getmany(timeout_ms=200)
            self.values.extend(r.value for part in batches.values() for r in part)
        return self.values

    def deliveries(self) -> list[DeliveryRecorded]:
        decode = decoder(DeliveryRecorded)
        return [decode.decode(v) for v in self.values]


@pytest.fixture
async def read_topic(sender_settings: SenderSettings) -> AsyncIterator[Any]:
    readers: list[AIOKafkaConsumer] = []

    async def open_reader(topic: str) -> TopicReader:
        consumer = make_consumer(sender_settings, topic, group_id=f"reader-{uuid.uuid4().hex[:8]}")
        await consumer.start()
        readers.append(consumer)
        return TopicReader(consumer)

    yield open_reader
    for consumer in readers:
        await consumer.stop()
