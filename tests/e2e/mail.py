"""What the sender e2e tests share: outbound messages to send, an SMTP server that counts what
it accepts, and readers of the topics the sender writes."""

from __future__ import annotations

import asyncio
import contextlib
import uuid
from collections import Counter, defaultdict
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from email import message_from_bytes
from typing import Any

import msgspec
from aiosmtpd.controller import Controller

from retarget.common.kafka import make_consumer, make_producer
from retarget.common.schemas import DeliveryRecorded, OutboundMessage, decoder
from retarget.common.settings import CommonSettings

from .conftest import free_port

#: a record's outcome as a test compares it
Outcome = tuple[str, str]
SENT: Outcome = ("sent", "accepted")
UNCONFIRMED: Outcome = ("failed", "unconfirmed_claim")


class CountingSmtp:
    """Counts accepted Message-IDs (bare, without <…@domain>); `flaky-…` recipients get a 451
    the first time, so the sender's retry path runs."""

    def __init__(self) -> None:
        self.received: Counter[str] = Counter()
        self.greylisted: set[str] = set()

    async def handle_RCPT(
        self, server: Any, session: Any, envelope: Any, address: str, options: list[str]
    ) -> str:
        if address.startswith("flaky-") and address not in self.greylisted:
            self.greylisted.add(address)
            return "451 4.7.1 Greylisted, try again later"
        envelope.rcpt_tos.append(address)
        return "250 OK"

    async def handle_DATA(self, server: Any, session: Any, envelope: Any) -> str:
        message_id = str(message_from_bytes(envelope.content)["Message-ID"]).strip("<>").split("@")[0]
        self.received[message_id] += 1
        return "250 2.0.0 Ok: queued"

    def assert_none_twice(self) -> None:
        assert not self.received or max(self.received.values()) == 1, (
            "a message reached the SMTP server twice"
        )


@contextlib.contextmanager
def counting_smtp() -> Iterator[tuple[CountingSmtp, int]]:
    """A CountingSmtp listening on a free port of 127.0.0.1, for the block's duration."""
    smtp, port = CountingSmtp(), free_port()
    controller = Controller(smtp, hostname="127.0.0.1", port=port)
    controller.start()
    try:
        yield smtp, port
    finally:
        controller.stop()


def outbound_message(workspace_id: str, n: int, *, local: str = "r", domains: int = 4) -> OutboundMessage:
    """Message n of a burst: its own id and recipient, spread over `domains` recipient domains."""
    message_id = f"m-{uuid.uuid4().hex}"
    recipient = f"{local}{n}@d{n % domains}.{workspace_id}.example"
    raw = f"From: Shop <news@shop.example>\r\nTo: {recipient}\r\nMessage-ID: <{message_id}@shop.example>\r\n\r\nhi\r\n"
    return OutboundMessage(
        message_id=message_id,
        trigger_id=uuid.uuid4().hex,
        workspace_id=workspace_id,
        profile_id=f"p{n}",
        campaign="cart",
        recipient=recipient,
        mail_from="bounces@shop.example",
        raw=raw,
        created_at=datetime.now(UTC),
    )


async def produce(settings: CommonSettings, topic: str, records: list[tuple[bytes, bytes]]) -> None:
    """(key, value) records, all acknowledged."""
    producer = make_producer(settings)
    await producer.start()
    try:
        for key, value in records:
            await producer.send(topic, value, key=key)
        await producer.flush()
    finally:
        await producer.stop()


async def read_until(
    settings: CommonSettings,
    topic: str,
    done: Callable[[dict[str, list[bytes]]], bool],
    timeout_s: float,
    *,
    linger_s: float = 0.0,
) -> dict[str, list[bytes]]:
    """Values by message id, read from the beginning until `done(values)` or the deadline; with
    `linger_s`, reading on once done until nothing arrived for that long (late copies count)."""
    consumer = make_consumer(settings, topic, group_id=f"reader-{uuid.uuid4().hex[:8]}")
    await consumer.start()
    found: dict[str, list[bytes]] = defaultdict(list)
    loop = asyncio.get_running_loop()
    try:
        deadline, quiet_since = loop.time() + timeout_s, None
        while loop.time() < deadline:
            got = False
            for part in (await consumer.getmany(timeout_ms=200)).values():
                for record in part:
                    found[msgspec.json.decode(record.value)["messageId"]].append(record.value)
                    got = True
            if done(found):
                quiet_since = loop.time() if got or quiet_since is None else quiet_since
                if loop.time() - quiet_since >= linger_s:
                    break
    finally:
        await consumer.stop()
    return found


_deliveries = decoder(DeliveryRecorded)


def outcomes_of(values: list[bytes]) -> set[Outcome]:
    """The distinct final outcomes among a message's delivery records (`deferred` is not final)."""
    records = (_deliveries.decode(v) for v in values)
    return {(d.outcome, d.reason) for d in records if d.outcome != "deferred"}


async def final_outcomes(
    settings: CommonSettings, topic: str, wanted: set[str], timeout_s: float, *, linger_s: float = 0.0
) -> dict[str, set[Outcome]]:
    """Each wanted message's distinct final outcomes, read until every one has one."""
    found = await read_until(
        settings,
        topic,
        lambda f: all(outcomes_of(f.get(mid, [])) for mid in wanted),
        timeout_s,
        linger_s=linger_s,
    )
    return {mid: outcomes_of(values) for mid, values in found.items() if outcomes_of(values)}
