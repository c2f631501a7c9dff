"""Ingest never loses an accepted event: the broker is killed while requests are in flight.

A private broker (the shared one must stay up) is SIGKILLed while clients keep posting
events with unique messageIds, then restarted on the same data folder. The invariant, for
every request: it got a 200 and its event is in Kafka after the restart, or it got
something else (503, or no answer at all). Non-200 events may or may not be in Kafka (a
timed-out send can still land); that is what the messageId is for.
"""

from __future__ import annotations

import asyncio
import time
import uuid
from collections import Counter
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from pathlib import Path

import httpx
import msgspec
import pytest
from aiokafka import AIOKafkaConsumer, TopicPartition

from retarget.common.schemas import TrackedEvent
from retarget.common.topics import Topics
from retarget.devstack.private_kafka import PrivateKafka
from retarget.ingest.settings import IngestSettings

from .conftest import Tenant, free_port, serving

pytestmark = [pytest.mark.integration, pytest.mark.timeout(120)]

CLIENTS = 16


@pytest.fixture
async def broker(tmp_path: Path, stack: dict[str, str]) -> AsyncIterator[PrivateKafka]:
    kafka = PrivateKafka(tmp_path / "kafka", port=free_port(), controller_port=free_port())
    kafka.start()
    try:
        await kafka.wait_ready()
        yield kafka
    finally:
        kafka.stop(timeout_s=10)


@dataclass
class Traffic:
    """What every request got, by messageId: its status, or the error when there was no answer."""

    outcomes: dict[str, int | str] = field(default_factory=dict)
    stop: asyncio.Event = field(default_factory=asyncio.Event)
    restarted: bool = False
    accepted_after_restart: int = 0
    recovered: asyncio.Event = field(default_factory=asyncio.Event)

    async def post_until_stopped(self, client: httpx.AsyncClient, writer: int) -> None:
        while not self.stop.is_set():
            message_id = f"d-{writer}-{uuid.uuid4().hex}"
            body = {"userId": f"u{writer}", "event": "Product Viewed", "messageId": message_id}
            try:
                response = await client.post("/v1/track", json=body)
                self.outcomes[message_id] = response.status_code
            except httpx.HTTPError as exc:  # no answer: not accepted
                self.outcomes[message_id] = type(exc).__name__
            if self.outcomes[message_id] != 200:
                await asyncio.sleep(0.05)  # a client backing off, not a busy loop against a 503
            elif self.restarted:
                self.accepted_after_restart += 1
                if self.accepted_after_restart >= 50:
                    self.recovered.set()


async def _message_ids_in(bootstrap: str, topic: str, partition_count: int) -> set[str]:
    """Every messageId on the topic, up to its end offsets as they are now."""
    consumer = AIOKafkaConsumer(
        bootstrap_servers=bootstrap, enable_auto_commit=False, isolation_level="read_committed"
    )
    await consumer.start()
    try:
        partitions = [TopicPartition(topic, p) for p in range(partition_count)]
        consumer.assign(partitions)
        await consumer.seek_to_beginning(*partitions)
        ends = await consumer.end_offsets(partitions)
        decoder = msgspec.json.Decoder(TrackedEvent)
        found: set[str] = set()
        async with asyncio.timeout(30):
            while [tp for tp, end in ends.items() if await consumer.position(tp) < end]:
                for records in (await consumer.getmany(timeout_ms=500)).values():
                    found.update(decoder.decode(r.value).message_id for r in records)
        return found
    finally:
        await consumer.stop()


async def test_every_200_is_in_kafka_after_the_broker_was_killed_mid_flight(
    broker: PrivateKafka, tenant: Tenant, topic_prefix: str
) -> None:
    settings = IngestSettings(
        kafka_bootstrap=broker.bootstrap,
        topic_prefix=topic_prefix,
        topic_partitions=3,
        port=free_port(),
        ingest_ops_port=free_port(),
        publish_timeout_s=2,  # a request waits at most this long for the ack, then 503
        kafka_connect_wait_s=20,
    )
    traffic = Traffic()
    started = time.monotonic()
    async with (
        serving(settings) as url,
        httpx.AsyncClient(base_url=url, auth=httpx.BasicAuth(tenant.write_key, ""), timeout=10) as client,
    ):
        writers = [asyncio.create_task(traffic.post_until_stopped(client, n)) for n in range(CLIENTS)]
        await asyncio.sleep(1.5)
        before_kill = len(traffic.outcomes)
        broker.kill()  # while CLIENTS requests are in flight
        await asyncio.sleep(3)
        broker.start()
        await broker.wait_ready()
        traffic.restarted = True
        # keep posting until ingest publishes again (its producer reconnects by itself)
        await asyncio.wait_for(traffic.recovered.wait(), 30)
        traffic.stop.set()
        await asyncio.gather(*writers)
    outcomes = traffic.outcomes

    in_kafka = await _message_ids_in(broker.bootstrap, Topics(topic_prefix).events, 3)
    accepted = {mid for mid, status in outcomes.items() if status == 200}
    refused = Counter(status for status in outcomes.values() if status != 200)

    lost = accepted - in_kafka
    assert not lost, f"{len(lost)} events answered 200 are not in Kafka, e.g. {sorted(lost)[:3]}"
    assert before_kill > 100, "too few requests before the kill for the test to mean anything"
    assert refused, "no request was refused while the broker was down: the kill came too late"
    assert set(refused) <= {503, "ReadTimeout", "RemoteProtocolError"}, refused
    assert in_kafka <= set(outcomes), "an event in Kafka that no request sent"
    assert time.monotonic() - started < 60
    print(f"accepted {len(accepted)}, refused {dict(refused)}, in Kafka {len(in_kafka)}")
